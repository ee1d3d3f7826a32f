"""Budgets: amounts with units, the space's section, the refusal up front, and a study that
never trains a student over one."""

from __future__ import annotations

import math
import re

import pytest
from optuna.trial import TrialState

from kws_search.errors import ConfigError
from kws_search.search.attrs import CHECKPOINT_ARTIFACT, CONSTRAINTS_KEY, feasible
from kws_search.search.budgets import OVER_BUDGET, UNTRAINED_QUALITY, Budgets, parse_amount
from kws_search.search.space import SearchSpaceError, load_space, parse_space


def test_amounts_read_as_people_write_them():
    assert parse_amount("16KB", "bytes", "--max-bytes") == 16 * 1024
    assert parse_amount("1.5 MB", "bytes", "--max-bytes") == 1.5 * 1024 ** 2
    assert parse_amount("300K", "count", "--max-macs") == 300_000
    assert parse_amount("2M", "count", "--max-macs") == 2_000_000
    assert parse_amount("50us", "time", "--max-latency") == 50
    assert parse_amount("0.05ms", "time", "--max-latency") == pytest.approx(50)
    assert parse_amount(4096, "bytes", "budgets.bytes") == 4096
    with pytest.raises(ConfigError, match="--max-bytes '16XB' is not an amount; write it "
                                          "like 16KB"):
        parse_amount("16XB", "bytes", "--max-bytes")
    with pytest.raises(ConfigError, match="--max-macs must be > 0"):
        parse_amount("0K", "count", "--max-macs")


def test_a_student_breaks_the_budgets_it_exceeds():
    budgets = Budgets(bytes=1000, macs=2e6)
    numbers = {"bytes": 1500.0, "macs_per_second": 1e6, "peak_ram": 1e9, "hop_us": 1e9}
    assert budgets.excess(numbers) == [pytest.approx(0.5), pytest.approx(-0.5)]
    assert budgets.broken(numbers) == "bytes 1.5 KB > --max-bytes 1000 B"
    assert not Budgets(bytes=2000).broken(numbers) and not Budgets().active()
    assert Budgets(bytes=1, ram=5).over(Budgets(bytes=9)) == Budgets(bytes=9, ram=5)


def test_a_space_sets_budgets_and_a_bad_one_is_refused_by_name():
    text = load_space("tiny").text + "budgets:\n  bytes: 16KB\n  macs: 2M\n"
    assert parse_space(text, "mine").budgets == Budgets(bytes=16384, macs=2e6)
    with pytest.raises(ConfigError, match="mine: budgets.ram 'lots' is not an amount"):
        parse_space(load_space("tiny").text + "budgets:\n  ram: lots\n", "mine")
    with pytest.raises(SearchSpaceError, match="budgets.flash is not a known key"):
        parse_space(load_space("tiny").text + "budgets:\n  flash: 16KB\n", "mine")


def test_a_budget_no_student_of_the_space_meets_is_refused_in_one_line():
    from kws_search.data.front_end import FeatureConfig
    from kws_search.search.reach import check_reachable

    space = load_space("tiny")
    with pytest.raises(ConfigError) as refused:
        check_reachable(space, FeatureConfig(), Budgets(bytes=100, macs=1e12))
    message = str(refused.value)
    assert re.match(r"--max-bytes 100 B: no student of space '\S*tiny.yaml' fits; the "
                    r"smallest bytes among its corners and \d+ samples is 508 B", message)
    assert "\n" not in message and "raise the budget" in message
    check_reachable(space, FeatureConfig(), Budgets(bytes=100_000))  # within reach: no error


@pytest.mark.slow
def test_a_study_never_trains_a_student_over_its_budgets(tiny_data, tiny_teacher, tiny_settings,
                                                         tmp_path):
    from kws_search.search.settings import Measures
    from kws_search.search.storage import StudyError
    from kws_search.search.study import check_identity, study_identity
    from kws_search.search.workers import run_search

    budgets = Budgets(bytes=1200)  # about half of the tiny space's students fit
    settings = tiny_settings(tiny_data, tiny_teacher, tmp_path, trials=8, budgets=budgets,
                             queue_hand_tuned=False, sampler="tpe")
    study = run_search(settings, progress=False)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    over = [t for t in complete if OVER_BUDGET in t.user_attrs]
    trained = [t for t in complete if OVER_BUDGET not in t.user_attrs]
    assert over and trained, [t.user_attrs["bytes"] for t in complete]
    for trial in over:  # ended before training: no checkpoint, the worst quality, infeasible
        assert trial.user_attrs["bytes"] > 1200 and trial.values[0] == UNTRAINED_QUALITY
        assert CHECKPOINT_ARTIFACT not in trial.user_attrs and not feasible(trial)
        assert trial.system_attrs[CONSTRAINTS_KEY][1] == pytest.approx(
            trial.user_attrs["bytes"] / 1200 - 1)
    for trial in trained:
        assert trial.user_attrs["bytes"] <= 1200 and CHECKPOINT_ARTIFACT in trial.user_attrs
        assert len(trial.system_attrs[CONSTRAINTS_KEY]) == 2
        assert math.isfinite(trial.user_attrs["peak_ram"])
    # export never picks one: not by a rule, however loose, nor by number
    from kws_search.search.select import SelectionError, pick_trial

    assert OVER_BUDGET not in pick_trial(study, within=1e6, rule="fastest").user_attrs
    with pytest.raises(SelectionError, match=f"trial {over[0].number} is over the study's "
                                             "budgets .*never trained"):
        pick_trial(study, over[0].number)
    # other budgets are another study
    other = study_identity(settings.data, Measures(budgets=Budgets(bytes=2400)),
                           load_space("tiny"))
    with pytest.raises(StudyError, match="different budgets.*--max-bytes 1.2 KB"):
        check_identity(study, other, allow_changes=False)


def test_run_refuses_a_budget_out_of_reach_before_any_work(tmp_path, capsys):
    from kws_search.cli import main

    studies = tmp_path / "studies"
    code = main(["run", "--space", "tiny", "--max-ram", "1KB", "--max-bytes", "64KB",
                 "--study", "device", "--storage", f"sqlite:///{studies / 'device.db'}",
                 "--data", str(tmp_path / "no-data"), "--teacher", str(tmp_path / "none.pt")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert err[0].startswith("error: --max-ram 1.0 KB: no student of space")
    assert "smallest peak_ram" in err[0] and "KB (cnn_channels" in err[0]
    assert not studies.exists()  # refused before the study was made
    assert main(["run", "--space", "tiny", "--max-macs", "lots"]) == 1
    assert capsys.readouterr().err.strip() == ("error: --max-macs 'lots' is not an amount; "
                                               "write it like 300K")
    # a negative amount is named as such, not taken for an option by argparse
    assert main(["run", "--space", "tiny", "--max-bytes", "-5KB"]) == 1
    assert capsys.readouterr().err.strip().startswith("error: --max-bytes '-5KB' is not an "
                                                      "amount")


def test_peak_ram_is_counted_against_the_exported_graph(tmp_path, student_checkpoint):
    """The count from the architecture against a liveness count over the exported ONNX
    graph's tensors: never below it, and within a fifth of it."""
    pytest.importorskip("onnx")
    from kws_search.data.front_end import FeatureConfig
    from kws_search.deploy.onnx import export_onnx
    from kws_search.memory import graph_peak_bytes, peak_ram_bytes
    from kws_search.models import CRNNConfig

    own = FeatureConfig().with_front_end(160, 16)  # frames that do not overlap
    for config, features in (
            (CRNNConfig(cnn_channels=2, stride_freq=3, stride_time=10, hidden=35, layers=1),
             FeatureConfig()),
            (CRNNConfig(cnn_channels=3, kernel_time=10, stride_time=12, hidden=12, rnn="rnn"),
             FeatureConfig()),
            (CRNNConfig(n_mels=16, cnn_channels=2, kernel_freq=3, kernel_time=8, stride_time=20,
                        hidden=24), own)):
        source = student_checkpoint(tmp_path / "student.pt", config, "int8", features)
        path, _ = export_onnx(source, tmp_path / "student.onnx")
        counted, graph = peak_ram_bytes(config, features), graph_peak_bytes(path)
        print(f"{config}: counted {counted} B, graph {graph} B")
        assert graph <= counted <= 1.2 * graph
