"""README stays true to the tree and to its measurements: the Layout section is the one scripts/readme_layout.py
generates from the packages, and every bullet of "Measured" names the command (benchmark, test or script) that
produced its numbers, with every file it names present."""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "scripts"))
from readme_layout import layout_section, replace_section  # noqa: E402

from tests.test_architecture import project_modules  # noqa: E402

README = REPO_ROOT / "README.md"
COMMAND_STARTS = ("python ", ".venv/bin/python ", "pytest ", "bash ", "imatrix ", "logminer ", "llama-")


def section(text: str, heading: str) -> str:
    start = text.index(heading + "\n") + len(heading) + 1
    end = text.find("\n## ", start)
    return text[start:] if end < 0 else text[start:end]


def test_layout_section_is_generated_from_the_tree():
    readme = README.read_text()
    assert replace_section(readme, layout_section()) == readme, "run: python scripts/readme_layout.py --write"


def test_generated_layout_names_every_package_and_module():
    generated = layout_section()
    for name, path in project_modules().items():
        parts = name.split(".")
        if path.name == "__init__.py":
            assert f"- `{'/'.join(parts)}/` — " in generated, name
        else:
            assert f"`{parts[-1]}`" in generated.split(f"- `{'/'.join(parts[:-1])}/` — ", 1)[1].split("\n")[0], name


def test_replace_section_keeps_the_rest():
    readme = "# T\n\nintro\n\n## Layout\nold\nlines\n\n## Next\nkept\n"
    assert replace_section(readme, "## Layout\nnew\n") == "# T\n\nintro\n\n## Layout\nnew\n\n## Next\nkept\n"
    assert replace_section("# T\n\n## Layout\nold\n", "## Layout\nnew\n") == "# T\n\n## Layout\nnew\n"
    assert replace_section("# T\n", "## Layout\nnew\n") == "# T\n\n## Layout\nnew\n"


def measured_bullets(text: str) -> list[str]:
    body = section(text, next(line for line in text.splitlines() if line.startswith("## Measured")))
    return [" ".join(item.split()) for item in re.split(r"\n(?=- )", body.strip()) if item.startswith("- ")]


def commands_of(bullet: str) -> list[str]:
    return [code for code in re.findall(r"`([^`]+)`", bullet) if code.startswith(COMMAND_STARTS)]


def test_measured_checker_on_examples():
    assert commands_of("- x is 3 (`python benchmarks/a.py --n 2`)") == ["python benchmarks/a.py --n 2"]
    assert commands_of("- x is 3, see `benchmarks/` and `report.json`") == []


def test_every_measured_number_names_its_command():
    bullets = measured_bullets(README.read_text())
    assert bullets
    assert [bullet[:80] for bullet in bullets if not commands_of(bullet)] == []
    for bullet in bullets:
        for command in commands_of(bullet):
            for path in re.findall(r"(?:benchmarks|tests|examples|scripts)/[\w./-]+\.(?:py|sh)", command):
                assert (REPO_ROOT / path).is_file(), (path, bullet[:80])
