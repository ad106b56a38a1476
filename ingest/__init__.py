"""Ingestion (installed as `kb.ingest`): discover files, load them, split them into chunks,
embed and store them; and store files uploaded through the page or the API."""

from kb import offline as _offline  # noqa: F401  (parsers must not phone home either)
