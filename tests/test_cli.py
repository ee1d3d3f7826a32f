"""The command line end to end on tiny settings, in-process through `main(argv)`."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from kws_search.cli import main


def test_errors_are_one_line_and_nonzero(workdir, tiny_data, capsys):
    assert main(["run", "--data", str(tiny_data), "--space", "nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: search space nope not found") and "\n" not in err
    with pytest.raises(SystemExit):  # argparse's choices: usage, then one error line
        main(["run", "--data", str(tiny_data), "--sampler", "cma"])
    assert "invalid choice: 'cma'" in capsys.readouterr().err
    assert main(["teacher", "--data", str(workdir / "missing")]) == 1
    assert "kws-search data synth" in capsys.readouterr().err
    assert main(["export", "--study", "absent"]) == 1
    assert "no study database at sqlite:///studies/absent.db" in capsys.readouterr().err
    assert not (workdir / "studies" / "absent.db").exists()


def test_a_run_refused_for_its_data_leaves_no_study_file(workdir, tiny_data, capsys):
    """Missing folder, a folder without split lists, an unknown keyword: one line each, and
    no empty studies/<name>.db behind."""
    notwav = workdir / "notwav" / "sheila"
    notwav.mkdir(parents=True)
    for data, keyword, said in ((workdir / "missing", "sheila", "does not exist"),
                                (notwav.parent, "sheila", "validation_list.txt is missing"),
                                (tiny_data, "marvin2", "no folder for keyword 'marvin2'")):
        assert main(["run", "--data", str(data), "--keyword", keyword, "--study", "r",
                     "--teacher", str(workdir / "t.pt")]) == 1
        assert said in capsys.readouterr().err
        assert not (workdir / "studies" / "r.db").exists()


def test_onnx_options_without_the_onnx_extra_say_how_to_install_it(workdir, tiny_data, capsys,
                                                                  monkeypatch):
    from kws_search.commands import export, run

    for module in (export, run):
        monkeypatch.setattr(module, "missing_onnx", lambda: ["onnxruntime"])
    assert main(["export", "--study", "absent", "--format", "onnx"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --format onnx needs onnxruntime") and "\n" not in err
    assert 'pip install -e ".[onnx]"' in err and not (workdir / "studies" / "absent.db").exists()
    assert main(["run", "--data", str(tiny_data), "--speed", "latency"]) == 1
    err = capsys.readouterr().err.strip()
    assert "--runtime torchscript" in err and "\n" not in err


@pytest.mark.slow
def test_every_subcommand_has_help_with_an_example():
    from kws_search.cli import COMMANDS, build_parser

    parser = build_parser()
    for module in COMMANDS:
        name = module.__name__.rsplit(".", 1)[-1]
        out = subprocess.run([sys.executable, "-m", "kws_search.cli", name, "--help"],
                             capture_output=True, text=True, check=True).stdout
        assert "example" in out, name
    assert parser.prog == "kws-search"


def help_examples(text: str) -> list[list[str]]:
    """The `kws-search ...` command lines of a help text, continuations joined, comments cut."""
    text = text.replace("\\\n", " ")
    return [shlex.split(line.split("#")[0])[1:] for line in text.splitlines()
            if line.strip().startswith("kws-search ")]


def test_every_help_example_parses(capsys):
    from kws_search.cli import COMMANDS, EPILOG, build_parser

    parser = build_parser()
    examples = help_examples(EPILOG)
    for module in COMMANDS:
        examples += help_examples(module.HELP)
    assert len(examples) > 2 * len(COMMANDS)
    for argv in examples:
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"help example does not parse: kws-search {' '.join(argv)}: "
                        f"{capsys.readouterr().err.strip()}")


def test_help_imports_neither_torch_nor_optuna():
    """`kws-search --help` (and a subcommand's) answers without loading the heavy libraries."""
    code = ("import sys\nfrom kws_search.cli import main\n"
            "for argv in (['--help'], ['run', '--help'], ['export', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('torch', 'optuna', 'torchaudio', 'pandas') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_every_option_has_help_and_choices_are_checked(capsys):
    import argparse

    from kws_search.cli import build_parser

    def missing_help(parser: argparse.ArgumentParser, path: str) -> list[str]:
        found = []
        for action in parser._actions:  # argparse lists a parser's options only here
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found += missing_help(child, f"{path} {name}")
            elif not action.help:
                found.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
        return found

    parser = build_parser()
    assert missing_help(parser, "kws-search") == []
    for argv in (["run", "--sampler", "bayes"], ["export", "--rule", "cheapest"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        assert "invalid choice" in capsys.readouterr().err
