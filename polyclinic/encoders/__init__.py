"""polyclinic.encoders"""
