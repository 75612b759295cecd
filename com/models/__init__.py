"""Models behind small base classes: the text-generation model (text.py); the embedding model moves here too."""
