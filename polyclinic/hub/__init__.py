"""polyclinic.hub"""
