"""Evaluation of retrieval and answers against public question sets (`kb eval`)."""
