"""kb: an offline enterprise knowledge base."""

from kb import offline as _offline  # noqa: F401  (sets the no-network switches first)

__version__ = "0.1.0"
