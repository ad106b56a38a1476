"""Keep every library kb uses from reaching the network.

kb promises that no byte leaves the machine. Libraries it builds on phone home by default
(unstructured's telemetry, Chroma's anonymous usage statistics, the Hugging Face hub when a model
name is not a local folder), so these switches are set before any of them is imported. They are
library switches, not kb settings, which is why they live here and not in kb.config.
"""

import os

_SWITCHES = {
    "DO_NOT_TRACK": "1",
    "SCARF_NO_ANALYTICS": "true",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
}


def enforce() -> None:
    for name, value in _SWITCHES.items():
        os.environ.setdefault(name, value)


enforce()
