"""Models behind small base classes: text embeddings (`embedding`) and text generation (`text`)."""
