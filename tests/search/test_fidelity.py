"""Multi-fidelity: the rung rule, its space section, and a study whose students stop early."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from kws_search.report.pages import write_report
from kws_search.search.fidelity import Rungs, dominates, goes_on
from kws_search.search.progress import progress_of
from kws_search.search.space import SearchSpaceError, parse_space
from kws_search.search.workers import run_search

BAR = 1e-3
TINY_RUNGS = """
model: {hidden: {type: int, low: 4, high: 8}, cnn_channels: 2, kernel_time: 10, stride_freq: 4}
train: {epochs: 3, lr: 5.0e-3, batch_size: 32, spec_augment: false}
quant: {mode: none}
fidelity: {rungs: [1], keep: 0.34, min_peers: 2}
"""


def test_a_student_within_the_bar_beats_any_that_is_not():
    assert dominates((BAR / 2, 1.0, 1.0), (BAR * 2, 50.0, 50.0), BAR)
    assert not dominates((BAR * 2, 50.0, 50.0), (BAR / 2, 1.0, 1.0), BAR)


def test_pareto_rank_keeps_small_students_that_are_worse_but_faster():
    peers = [(0.01, 2.0, 2.0), (0.02, 4.0, 4.0), (0.03, 8.0, 8.0), (0.05, 2.0, 2.0),
             (0.06, 3.0, 3.0)]
    assert goes_on((0.2, 40.0, 40.0), peers, BAR, keep=1 / 3, min_peers=2)  # alone that small
    assert not goes_on((0.05, 3.0, 3.0), peers, BAR, keep=1 / 3, min_peers=2)  # dominated
    assert goes_on((0.05, 3.0, 3.0), peers, BAR, keep=1 / 3, min_peers=10)  # too few to judge


def test_rungs_are_checked_against_the_space():
    with pytest.raises(SearchSpaceError, match=r"fidelity.rungs \[1, 3\] must all be below "
                                               r"train.epochs=3"):
        parse_space(TINY_RUNGS.replace("rungs: [1]", "rungs: [1, 3]"))
    with pytest.raises(SearchSpaceError, match="fidelity.keep must be between 0 and 1"):
        parse_space(TINY_RUNGS.replace("keep: 0.34", "keep: 1.5"))
    with pytest.raises(SearchSpaceError, match="fidelity values are fixed"):
        parse_space(TINY_RUNGS.replace("keep: 0.34", "keep: {type: float, low: 0.1, high: 0.5}"))
    with pytest.raises(SearchSpaceError, match="fidelity.nope is not a known key"):
        parse_space(TINY_RUNGS.replace("keep: 0.34", "nope: 1"))
    assert parse_space(TINY_RUNGS).rungs == Rungs((1,), 0.34, 2)
    assert parse_space(TINY_RUNGS.replace("fidelity: {rungs: [1], keep: 0.34, min_peers: 2}",
                                          "")).rungs.epochs == ()


@pytest.mark.slow
def test_stopped_students_are_pruned_with_their_numbers_and_count_as_trials(
        tiny_data, tiny_teacher, tmp_path, tiny_settings):
    space = tmp_path / "rungs.yaml"
    space.write_text(TINY_RUNGS)
    settings = tiny_settings(tiny_data, tiny_teacher, tmp_path, space=str(space), trials=6,
                             queue_hand_tuned=False)
    study = run_search(settings, progress=False)
    trials = study.get_trials()
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(pruned) + len(complete) == 6 and pruned and complete
    assert not [t for t in trials if t.state == TrialState.FAIL]
    for t in pruned:
        assert t.user_attrs["pruned_at_epoch"] == 1
        assert {"rung_1", "speedup", "compression", "macs", "bytes"} <= set(t.user_attrs)
        assert "fail_reason" not in t.user_attrs
        # infeasible for the samplers, by its quality so far
        assert t.system_attrs["constraints"] == [t.user_attrs["rung_1"] - study.user_attrs[
            "quality_bar"]]
    for t in complete:
        assert "rung_1" in t.user_attrs and t.user_attrs["best_epoch"] <= 3
    progress = progress_of(study)
    assert (progress.complete, progress.pruned, progress.failed) == (len(complete),
                                                                     len(pruned), 0)
    report = write_report(settings.study.name, settings.study.storage, tmp_path / "report",
                          png=False)
    rows = report.trials[report.trials["state"] == "PRUNED"]
    assert len(rows) == len(pruned) and rows["speedup"].notna().all()
    assert rows["quality"].isna().all()  # no final quality: never on a front
    assert f"{len(pruned)} stopped early" in (report.folder / "index.html").read_text()
