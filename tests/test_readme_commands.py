"""The README's commands exist: every `wmpo <subcommand>` in its fenced bash blocks (as `wmpo`,
`.venv/bin/wmpo` or `$W`) is a subcommand the CLI accepts (`--help` exits 0, one process per
distinct subcommand), and every `bench/<name>.py` it names is a file."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

FENCED_BASH = re.compile(r"^```(?:bash|sh)\n(.*?)^```", re.S | re.M)
WMPO_COMMAND = re.compile(r"(?:^|[\s;&|(])(?:\.venv/bin/wmpo|wmpo|\$W)\s+([a-z][a-z0-9-]*)(?:\s+([a-z][a-z0-9-]*))?")
NESTED = {"episodes"}  # `wmpo episodes list|recover DIR`
BENCH_SCRIPT = re.compile(r"\bbench/([A-Za-z0-9_]+\.py)\b")


def readme_subcommands() -> list[str]:
    found = set()
    for block in FENCED_BASH.findall(README):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0]  # trailing comments
            for sub, nested in WMPO_COMMAND.findall(line):
                found.add(f"{sub} {nested}" if sub in NESTED and nested else sub)
    return sorted(found)


def readme_bench_scripts() -> list[str]:
    return sorted(set(BENCH_SCRIPT.findall(README)))


SUBCOMMANDS = readme_subcommands()
BENCH_SCRIPTS = readme_bench_scripts()


def test_readme_names_commands():
    """The extraction finds the pipeline's commands (guards against a regex that matches nothing)."""
    assert {"base-policy", "train-bc", "eval", "train-wm", "train-wmpo", "loop"} <= set(SUBCOMMANDS)
    assert "table1.py" in BENCH_SCRIPTS


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
def test_readme_subcommand_exists(subcommand):
    result = subprocess.run(
        [sys.executable, "-m", "wmpo_bringup.cli", *subcommand.split(), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"wmpo {subcommand} --help: {result.stderr[-2000:]}"


@pytest.mark.parametrize("script", BENCH_SCRIPTS)
def test_readme_bench_script_exists(script):
    assert (ROOT / "bench" / script).is_file()
