"""bench/results/reliability.json and reliability.md: one section per reliability benchmark.

Each script (hostile files, crashes, concurrency, prompt injection, soak) replaces its own
section and leaves the others, so they can run separately and at different times.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import date
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ORDER = ["hostile", "crash", "disk_full", "concurrency", "injection", "soak"]


def load_now() -> float:
    return os.getloadavg()[0]


def machine(load: float) -> str:
    return f"{os.cpu_count()} CPU cores ({platform.machine()}), load average {load:.1f} at start"


def update(section: str, data: dict, markdown: str, load_at_start: float) -> None:
    """Store `data` and its Markdown under `section`, dated, with the machine it ran on."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "reliability.json"
    sections = json.loads(path.read_text()) if path.exists() else {}
    sections[section] = {
        "date": date.today().isoformat(),
        "machine": machine(load_at_start),
        "data": data,
        "markdown": markdown,
    }
    path.write_text(json.dumps(sections, indent=2, ensure_ascii=False) + "\n")
    parts = ["# Reliability\n", "Written by the bench/*_bench.py reliability scripts.\n"]
    for name in sorted(sections, key=lambda n: ORDER.index(n) if n in ORDER else 99):
        entry = sections[name]
        parts.append(f"## {name.replace('_', ' ')} ({entry['date']}, {entry['machine']})\n")
        parts.append(entry["markdown"].strip() + "\n")
    (RESULTS / "reliability.md").write_text("\n".join(parts))
