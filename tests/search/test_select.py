"""Choosing a trial: each rule's pick, feasibility first, targets, and checkpoint fetching."""

from __future__ import annotations

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.trial import TrialState, create_trial

from kws_search.search.attrs import DIRECTIONS
from kws_search.search.select import SelectionError, fetch_checkpoint, pick_trial

# name: (quality, speed-up, compression, constraint); constraint <= 0 is within the bar
TRIALS = {
    "fast": (0.010, 10.0, 2.0, -0.01),
    "fast_better": (0.005, 10.0, 1.5, -0.02),  # ties "fast" on speed-up with better quality
    "small": (0.020, 2.0, 12.0, 0.0),  # exactly on the bar: feasible
    "accurate": (0.001, 3.0, 3.0, -0.03),
    "balanced": (0.015, 6.0, 6.0, -0.005),
    "over_bar": (0.0001, 50.0, 50.0, 0.5),  # would win every rule, but misses the bar
    "unconstrained": (0.0, 100.0, 100.0, None),  # no constraint recorded: not feasible
}


@pytest.fixture
def study() -> optuna.Study:
    """An in-memory study of the trials above plus a failed and a pruned one."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="picks", directions=list(DIRECTIONS))
    for name, (quality, speedup, compression, constraint) in TRIALS.items():
        system = {} if constraint is None else {"constraints": [constraint]}
        study.add_trial(create_trial(values=[quality, speedup, compression],
                                     user_attrs={"name": name}, system_attrs=system))
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"fail_reason": "NaN loss"},
                                 system_attrs={"constraints": [-1.0]}))
    study.add_trial(create_trial(state=TrialState.PRUNED, system_attrs={"constraints": [-1.0]}))
    return study


def picked(study: optuna.Study, **options) -> str:
    return pick_trial(study, **options).user_attrs["name"]


@pytest.mark.parametrize("rule, name", [("fastest", "fast_better"), ("smallest", "small"),
                                        ("best", "accurate"), ("balanced", "balanced")])
def test_each_rule_picks_among_feasible_trials_only(study, rule, name):
    assert picked(study, rule=rule) == name


def test_balanced_is_the_default_rule(study):
    assert picked(study) == "balanced"


def test_targets_narrow_the_pool(study):
    assert picked(study, rule="smallest", min_speedup=5) == "balanced"
    assert picked(study, rule="fastest", min_compression=5) == "balanced"
    assert picked(study, rule="best", min_speedup=6, min_compression=6) == "balanced"
    assert picked(study, rule="fastest", min_speedup=10) == "fast_better"  # targets inclusive
    with pytest.raises(SelectionError, match="no student of study 'picks' within the study's "
                                             r"bar reaches speed-up >= 20 .*lower the targets"):
        pick_trial(study, min_speedup=20)


def test_a_study_without_feasible_trials_says_so():
    study = optuna.create_study(study_name="none-ok", directions=list(DIRECTIONS))
    study.add_trial(create_trial(values=[0.5, 9.0, 9.0], system_attrs={"constraints": [0.1]}))
    with pytest.raises(SelectionError, match="no student of study 'none-ok' within the "):
        pick_trial(study)


def test_without_feasible_students_export_names_the_closest_and_within_chooses_near_it():
    study = optuna.create_study(study_name="near", directions=list(DIRECTIONS))
    study.set_user_attr("teacher", {"val_quality": 0.1})
    for values in ([0.5, 9.0, 9.0], [0.24, 2.0, 3.0], [0.3, 4.0, 5.0]):
        study.add_trial(create_trial(values=values,
                                     system_attrs={"constraints": [values[0] - 0.11]}))
    with pytest.raises(SelectionError, match=r"the closest is trial 1 at 2.40x the teacher .*"
                                             r"pass --within 2.4 "):
        pick_trial(study)
    assert pick_trial(study, within=2.4).number == 1
    assert pick_trial(study, within=3).number == 2  # balanced: min(4, 5) beats min(2, 3)
    assert pick_trial(study, within=5, rule="fastest").number == 0
    with pytest.raises(SelectionError, match="within 2x the teacher's quality"):
        pick_trial(study, within=2)


def test_within_counts_a_finalist_by_the_upper_end_of_its_interval_on_test():
    """`export --within M` uses the answer's rule: a finalist judged on test is within M only
    when its whole paired interval is, whatever its validation quality."""
    study = optuna.create_study(study_name="judged", directions=list(DIRECTIONS))
    study.set_user_attr("teacher", {"val_quality": 0.1})
    for values, (ratio, lo, hi) in (([0.05, 2.0, 3.0], (0.6, 0.55, 0.66)),
                                    ([0.09, 9.0, 9.0], (1.2, 1.1, 1.3))):  # val 0.9x: 1.2x on test
        study.add_trial(create_trial(values=values, system_attrs={"constraints": [-0.01]},
                                     user_attrs={"final_of": 0, "teacher_ratio": ratio,
                                                 "teacher_ratio_lo": lo, "teacher_ratio_hi": hi}))
    assert pick_trial(study, within=1.25, rule="fastest").number == 0  # 1.3 > 1.25
    assert pick_trial(study, within=1.3, rule="fastest").number == 1


def test_an_unknown_rule_names_the_rules(study):
    with pytest.raises(SelectionError, match="unknown rule 'quickest'; choose one of balanced, "
                                             "fastest, smallest, best"):
        pick_trial(study, rule="quickest")


def test_a_trial_by_number_is_returned_even_if_infeasible(study):
    over_bar = list(TRIALS).index("over_bar")
    assert pick_trial(study, trial=over_bar, rule="ignored").user_attrs["name"] == "over_bar"
    with pytest.raises(SelectionError, match=r"trial 7 is FAIL \(NaN loss\); pick a complete"):
        pick_trial(study, trial=7)
    with pytest.raises(SelectionError, match="trial 8 is PRUNED; pick a complete trial"):
        pick_trial(study, trial=8)
    with pytest.raises(SelectionError, match=r"no trial 42 \(it has trials 0..8\)"):
        pick_trial(study, trial=42)


def test_fetch_checkpoint_downloads_the_trials_artifact(tmp_path):
    study = optuna.create_study(study_name="art", directions=list(DIRECTIONS))
    store = tmp_path / "artifacts"
    store.mkdir()
    source = tmp_path / "trial.pt"
    source.write_bytes(b"weights and configs")
    artifact = upload_artifact(artifact_store=FileSystemArtifactStore(str(store)),
                               file_path=str(source), study_or_trial=study)
    study.set_user_attr("artifact_dir", str(store))
    study.add_trial(create_trial(values=[0.1, 2.0, 2.0],
                                 user_attrs={"checkpoint_artifact": artifact}))
    study.add_trial(create_trial(values=[0.1, 2.0, 2.0]))
    with_artifact, without = study.get_trials()
    dest = tmp_path / "out" / "x.pt"
    dest.parent.mkdir()
    dest.write_bytes(b"an older download")
    assert fetch_checkpoint(study, with_artifact, dest) == dest  # replaced, not refused
    assert dest.read_bytes() == b"weights and configs"
    with pytest.raises(SelectionError, match="trial 1 has no checkpoint artifact"):
        fetch_checkpoint(study, without, tmp_path / "y.pt")
    store.rename(tmp_path / "moved")
    with pytest.raises(SelectionError, match="artifact folder .* of study 'art' is missing; run "
                                             "export where the study's artifacts are"):
        fetch_checkpoint(study, with_artifact, tmp_path / "z.pt")
    assert not (tmp_path / "z.pt").exists()


def test_fetch_checkpoint_of_a_study_that_never_stored_artifacts(tmp_path):
    study = optuna.create_study(study_name="bare", directions=list(DIRECTIONS))
    study.add_trial(create_trial(values=[0.1, 2.0, 2.0],
                                 user_attrs={"checkpoint_artifact": "some-id"}))
    with pytest.raises(SelectionError, match="study 'bare' records no artifact folder"):
        fetch_checkpoint(study, study.get_trials()[0], tmp_path / "x.pt")
