"""`kb serve`: the knowledge base as an OpenAI-compatible HTTP service (see app.py)."""
