"""polyclinic: turn a multilingual medical corpus into published Hugging Face Hub artefacts."""

__version__ = "0.1.0"
