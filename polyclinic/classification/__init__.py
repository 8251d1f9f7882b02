"""Distilled clinical classifiers: a student (``AutoModelForSequenceClassification``) trained on a teacher's
labels, judged on the verified subset only, compared with the teacher on the same machine, and released
with a text-classification card."""
