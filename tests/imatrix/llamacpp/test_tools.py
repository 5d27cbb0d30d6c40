"""Running llama.cpp's tools: the command lines quantize / imatrix / perplexity build (read back from stand-in
tools that print their arguments), the search order, timeouts and logs; and the real pinned build is found with its
libggml-base (a failure in CI when it is missing)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from imatrix.llamacpp import tools
from tests.real_components import require_llamacpp_tools

ECHO = "#!/bin/sh\necho \"$(basename \"$0\")\"; for a in \"$@\"; do echo \"arg:$a\"; done\n"


@pytest.fixture
def stand_ins(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in tools.TOOLS:
        path = folder / name
        path.write_text(ECHO)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    (folder / "slow-tool").write_text("#!/bin/sh\necho started\nsleep 5\n")
    (folder / "slow-tool").chmod(0o755)
    monkeypatch.setenv(tools.LLAMA_CPP_BIN_ENV, str(folder))
    return folder


def _args(run: tools.ToolRun) -> list[str]:
    return [line[4:] for line in run.output.splitlines() if line.startswith("arg:")]


def test_command_lines(stand_ins, tmp_path):
    model, text, out, imatrix = (tmp_path / n for n in ("m.gguf", "t.txt", "o.gguf", "i.gguf"))
    assert _args(tools.quantize(model, out, "IQ2_XS", imatrix=imatrix, threads=3)) == [
        "--allow-requantize", "--imatrix", str(imatrix), str(model), str(out), "IQ2_XS", "3"]
    assert _args(tools.quantize(model, out, "Q4_K", allow_requantize=False)) == [str(model), str(out), "Q4_K"]
    assert _args(tools.imatrix(model, text, out, ctx_size=128, chunks=4, threads=2, extra_args=["--no-ppl"])) == [
        "-m", str(model), "-f", str(text), "-o", str(out), "-c", "128", "--chunks", "4", "-t", "2", "--no-ppl"]
    run = tools.perplexity(model, text, ctx_size=64)
    assert _args(run) == ["-m", str(model), "-f", str(text), "-c", "64"]
    assert run.command[0] == str((stand_ins / "llama-perplexity").resolve())


def test_logs_and_timeouts(stand_ins, tmp_path):
    log = tmp_path / "run.log"
    tools.run_tool("llama-quantize", ["x"], log_path=log)
    assert log.read_text() == "llama-quantize\narg:x\n"
    with pytest.raises(tools.LlamaCppFailed) as caught:
        tools.run_tool("slow-tool", [], timeout=0.5)
    assert caught.value.returncode == -1 and "timed out after 0.5 s" in str(caught.value)


def test_environment_folder_comes_first(stand_ins, tmp_path, monkeypatch):
    other = tmp_path / "path-bin"
    other.mkdir()
    (other / "llama-imatrix").write_text(ECHO)
    (other / "llama-imatrix").chmod(0o755)
    monkeypatch.setenv("PATH", f"{other}{os.pathsep}{os.environ['PATH']}")
    assert tools.find_tool("llama-imatrix") == (stand_ins / "llama-imatrix").resolve()
    monkeypatch.delenv(tools.LLAMA_CPP_BIN_ENV)
    assert tools.find_tool("llama-imatrix") == (other / "llama-imatrix").resolve()
    assert not tools.tools_available(["llama-no-such-tool"])


def test_real_pinned_tools_and_library():
    require_llamacpp_tools(tools.TOOLS[:3])
    version = tools.llama_cpp_version()
    assert version.version and version.build and version.commit
    assert tools.ggml_library_path().name.startswith(("libggml-base", "ggml-base"))
    assert all(os.access(tools.find_tool(name), os.X_OK) for name in tools.TOOLS[:3])
