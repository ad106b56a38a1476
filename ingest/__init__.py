"""Ingestion: discover files, load them, split them into chunks, embed and store them."""

from kb import offline as _offline  # noqa: F401  (parsers must not phone home either)
