"""polyclinic.evaluation"""
