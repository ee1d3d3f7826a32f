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


class _Parsed(Exception):
    """Raised in place of running a benchmark once its command line has parsed."""


def shown_benchmarks() -> list[tuple[str, str]]:
    """(page, command) for every `python bench/...` code span or code-block line (a span may
    wrap onto the next line); a command with `...` in it is a sketch, not a command."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for span in re.findall(r"`+\n?(python bench/[^`]+?)\n?`+", text):
            for line in span.splitlines() if "\n```" in span else [" ".join(span.split())]:
                if line.startswith("python bench/") and "..." not in line:
                    found.append((page.name, line.split("#")[0].strip()))
    return sorted(set(found))


@pytest.mark.parametrize("page, command", shown_benchmarks())
def test_every_benchmark_command_in_the_docs_parses(page, command, monkeypatch):
    """The script's own argparse reads the shown arguments; nothing is measured."""
    import argparse
    import runpy
    import sys

    words = shlex.split(command)
    script = ROOT / words[1]
    assert script.is_file(), f"{page}: `{command}` names no script"
    real = argparse.ArgumentParser.parse_args

    def parse_then_stop(parser, args=None, namespace=None):
        real(parser, args, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [str(script), *words[2:]])
    monkeypatch.syspath_prepend(str(script.parent))  # as `python bench/x.py` puts it first
    with pytest.raises(_Parsed):
        try:
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exc:
            assert exc.code == 0, f"{page}: `{command}` is refused by its script"
            raise _Parsed from None


def test_the_docs_show_benchmark_commands():
    assert len(shown_benchmarks()) >= 10


def test_the_layout_page_names_every_module_in_its_folder():
    """docs/layout.md has a row per package folder naming each of its modules in backticks
    (`commands/` is one module per subcommand, named by the command line itself)."""
    rows = dict(re.findall(r"^\| `(kws_search/[a-z_/]*)` \| (.*) \|$",
                           (ROOT / "docs" / "layout.md").read_text(), re.M))
    package = ROOT / "kws_search"
    for folder in sorted({p.parent for p in package.rglob("*.py")}):
        name = f"{folder.relative_to(ROOT).as_posix()}/"
        if name == "kws_search/commands/":
            continue
        assert name in rows, f"docs/layout.md has no row for {name}"
        for module in sorted(folder.glob("*.py")):
            if module.stem != "__init__" and module.stem != "__main__":
                assert f"`{module.stem}`" in rows[name], (
                    f"docs/layout.md does not name {name}{module.name}")
