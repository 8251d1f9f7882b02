"""polyclinic.concepts"""
