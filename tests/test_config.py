"""Settings: one model, every field documented in .env.example, KB_ variables honoured."""

import re
from pathlib import Path

from kb.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_in_env_example_with_a_comment():
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    for name in Settings.model_fields:
        variable = f"KB_{name.upper()}"
        index = next((i for i, x in enumerate(lines) if re.match(rf"#?\s*{variable}=", x)), None)
        assert index is not None, f"{variable} is missing from .env.example"
        assert lines[index - 1].startswith("# "), f"{variable} has no comment line above it"


def test_kb_variables_override_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("KB_ANSWER_CHECK", "false")
    monkeypatch.setenv("KB_TOP_K", "7")
    monkeypatch.setenv("KB_HOME", str(tmp_path))
    settings = Settings()
    assert settings.answer_check is False
    assert settings.top_k == 7
    assert settings.home == tmp_path.resolve()
