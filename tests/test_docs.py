"""The docs a newcomer reads: every `kws-search` command they show is one the command line
takes, links between pages lead somewhere, and the README fits on a screen or two."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from kws_search.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDERS = {"N": "3", "M": "1.5"}  # `--trial N`, `--within M`: numbers in the prose


def shown_commands() -> list[tuple[str, str]]:
    """(page, command) for every `kws-search ...` line of a code block, and every code span
    of more than two words (a bare `kws-search evaluate` names the command)."""
    found = []
    for page in PAGES:
        text = page.read_text()
        blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
        lines = [ln for block in blocks for ln in block.replace("\\\n", " ").splitlines()]
        spans = [span for span in re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text,
                                                                   flags=re.S))
                 if len(span.split()) > 2]
        for candidate in (*lines, *spans):
            for part in re.split(r"&&|;|\|", candidate.split("#")[0]):
                part = part.strip().removeprefix("sudo ").removeprefix(".venv/bin/")
                if part.startswith("kws-search ") and "..." not in part:
                    found.append((page.name, part))
    return sorted(set(found))


@pytest.mark.parametrize("page, command", shown_commands())
def test_every_command_in_the_docs_parses(page, command):
    words = [PLACEHOLDERS.get(w, w) for w in shlex.split(command)[1:]]
    try:
        build_parser().parse_args(words)
    except SystemExit as exc:  # argparse's way of refusing (or of printing --help)
        assert exc.code == 0, f"{page}: `{command}` is refused by the command line"


def test_the_docs_show_commands_of_every_subcommand():
    shown = {shlex.split(c)[1] for _, c in shown_commands()}
    assert {"data", "teacher", "run", "report", "dashboard", "export", "stream", "demo",
            "evaluate"} <= shown


def test_links_between_pages_lead_to_files():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.name} links to {target}"


def test_the_readme_fits_on_a_screen_or_two():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150
