"""polyclinic.pretraining"""
