"""The built-in default model: the cache folder honours CALIBKIT_CACHE and XDG_CACHE_HOME, an assembled file is
reused, and the real Gemma 3 270M GGUF assembles from its packages (a failure in CI when they are missing)."""

from __future__ import annotations

from pathlib import Path

from imatrix.model import default_model
from tests.real_components import require_model


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CALIBKIT_CACHE", str(tmp_path / "own"))
    assert default_model.cache_dir() == tmp_path / "own"
    monkeypatch.delenv("CALIBKIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_model.cache_dir() == tmp_path / "xdg" / "calibkit"


def test_an_assembled_file_is_reused(monkeypatch, tmp_path):
    monkeypatch.setenv("CALIBKIT_CACHE", str(tmp_path))
    target = tmp_path / default_model.DEFAULT_MODEL_ALIAS / default_model.GGUF_NAME
    target.parent.mkdir(parents=True)
    target.write_bytes(b"GGUF already here")
    assert default_model.default_model_gguf() == target and target.read_bytes() == b"GGUF already here"


def test_real_default_model_is_a_gguf():
    path = Path(require_model())
    assert path.name == default_model.GGUF_NAME
    with path.open("rb") as handle:
        assert handle.read(4) == b"GGUF"
    assert path.stat().st_size > 100 * 2**20  # the 270M Q4_K_M file is ~240 MiB
