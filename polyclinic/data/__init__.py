"""polyclinic.data"""
