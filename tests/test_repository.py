"""Repository-wide checks: the linter passes and the top level shows exactly the stages."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is in the dev extra")
def test_ruff_passes():
    done = subprocess.run(["ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_top_level_layout():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    top = {line.split("/", 1)[0] for line in tracked.stdout.splitlines()}
    assert top == {".ci", ".gitignore", "LICENSE", "README.md", "pyproject.toml", "swatkit",
                   "golden", "rtl", "sim", "fpga_flows", "tests", "docs"}


def test_the_readme_venv_is_ignored():
    """The README suggests `python3 -m venv .venv` in the checkout: git must not list it."""
    if "python3 -m venv .venv" not in (ROOT / "README.md").read_text():
        pytest.skip("the README no longer suggests .venv")
    done = subprocess.run(["git", "check-ignore", "-q", ".venv/bin/python"], cwd=ROOT)
    if done.returncode == 128:
        pytest.skip("not a git checkout")
    assert done.returncode == 0, ".venv/ is not in .gitignore"
