"""Teacher labelling for distilled classifiers: an LLM (or an honest offline zero-shot encoder) labels a
corpus into a fixed label set; a verified subset judges it before any student is trained."""
