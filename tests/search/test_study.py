"""The search on tiny data: objectives, constraint, attributes, artifact, resume."""

from __future__ import annotations

from dataclasses import replace

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore, download_artifact
from optuna.trial import TrialState

from kws_search.checkpoint import load_model
from kws_search.search.attrs import OBJECTIVES, feasible
from kws_search.search.progress import feasible_front
from kws_search.search.settings import Measures
from kws_search.search.workers import run_search

MEASURES = ("val_quality", "macs", "bytes", "params", "latency_ms", "quant",
            "speedup", "compression", "checkpoint_artifact")


def test_study_records_objectives_constraint_attributes(tiny_study):
    settings, study = tiny_study
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 3
    assert study.metric_names == list(OBJECTIVES)
    teacher = study.user_attrs["teacher"]
    for t in trials:
        quality, speedup, compression = t.values
        assert 0 <= quality <= 1
        whole = teacher["macs"] + teacher["frontend_macs"]
        assert speedup == whole / (t.user_attrs["macs"] + t.user_attrs["frontend_macs"]) > 1
        assert t.user_attrs["model_speedup"] == teacher["macs"] / t.user_attrs["macs"]
        assert compression == teacher["bytes"] / t.user_attrs["bytes"] > 1
        assert set(MEASURES) <= set(t.user_attrs)
        assert "test_quality" not in t.user_attrs  # the answer's split: no decision reads it
        constraint = t.system_attrs["constraints"]
        assert constraint == [quality - study.user_attrs["quality_bar"]]
        assert feasible(t) == (quality <= study.user_attrs["quality_bar"])


def test_trial_checkpoint_artifact_rebuilds_the_student(tiny_study, tmp_path):
    settings, study = tiny_study
    trial = study.get_trials(states=(TrialState.COMPLETE,))[0]
    store = FileSystemArtifactStore(str(settings.study.artifact_dir))
    path = tmp_path / "student.pt"
    download_artifact(artifact_store=store, file_path=str(path),
                      artifact_id=trial.user_attrs["checkpoint_artifact"])
    model, state = load_model(path)
    assert state["kind"] == "student" and state["quant"] == trial.user_attrs["quant"]
    assert state["metrics"]["val_quality"] == trial.values[0]
    assert sum(1 for _ in model.modules()) > 1


def test_front_is_feasible_and_non_dominated(tiny_study):
    _, study = tiny_study
    front = feasible_front(study)
    for t in front:
        assert feasible(t)
        for o in study.get_trials(states=(TrialState.COMPLETE,)):
            if feasible(o) and o.number != t.number:
                better = (o.values[0] <= t.values[0] and o.values[1] >= t.values[1]
                          and o.values[2] >= t.values[2] and o.values != t.values)
                assert not better


def test_hand_tuned_students_are_queued_first(tiny_data, tiny_teacher, tiny_settings, tmp_path):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    settings = tiny_settings(tiny_data, tiny_teacher, tmp_path, trials=1)
    # The tiny space cannot hold the seeds' students (ranges differ), so nothing is queued.
    study = run_search(settings, progress=False)
    assert study.get_trials() and not study.get_trials(states=(TrialState.WAITING,))


def test_hand_tuned_students_are_held_as_queued_parameters():
    """The default space holds the hand-made students: each is queued once, with the
    parameters its trial will run, and the samplers count it as a student the study holds."""
    from kws_search.search.queue import HAND_TUNED, queue_hand_tuned
    from kws_search.search.samplers import held_students
    from kws_search.search.space import load_space

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(directions=["minimize", "maximize", "maximize"])
    queued = queue_hand_tuned(study, load_space("default"))
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert 0 < queued == len(waiting) <= len(HAND_TUNED)
    assert held_students(study) == {tuple(sorted(t.params.items())) for t in waiting}
    assert queue_hand_tuned(study, load_space("default")) == 0  # only into a new study
    trial = study.ask()
    channels = load_space("default").distributions()["cnn_channels"]
    assert (trial.suggest_int("cnn_channels", channels.low, channels.high, log=channels.log)
            == waiting[0].params["cnn_channels"])


def test_a_study_from_before_the_front_end_was_counted_is_not_resumed(tiny_data, tiny_teacher,
                                                                      tiny_settings, tmp_path):
    """Its speed-ups are of the networks alone; new trials would count the front end too."""
    from kws_search.search.space import load_space
    from kws_search.search.storage import StudyError
    from kws_search.search.study import check_identity, study_identity

    settings = tiny_settings(tiny_data, tiny_teacher, tmp_path)
    identity = study_identity(settings.data, settings.study.measures, load_space("tiny"))
    assert identity["speed"] == "macs, front end included"
    study = optuna.create_study(directions=["minimize", "maximize", "maximize"])
    for key, value in identity.items():
        if key != "speed":  # as such a study stored it
            study.set_user_attr(key, value)
    study.add_trial(optuna.trial.create_trial(values=[0.1, 2.0, 2.0]))
    with pytest.raises(StudyError, match="different speed objective.*--speed model-macs"):
        check_identity(study, identity, allow_changes=False)
    # with the speed-up it was made with, it resumes
    check_identity(study, study_identity(settings.data, Measures(speed="model-macs"),
                                         load_space("tiny")), allow_changes=False)
    latency = study_identity(settings.data, Measures(speed="latency"), load_space("tiny"))
    assert latency["speed"] == "per-hop latency in onnxruntime (ONNX graph 2), front end included"


def test_a_latency_study_timed_on_an_older_onnx_graph_is_not_resumed(tiny_data, tiny_teacher,
                                                                    tiny_settings, tmp_path):
    """A shorter graph makes a small student's hop cheaper by more than the teacher's: its
    old and new speed-ups would not compare."""
    from kws_search.search.space import load_space
    from kws_search.search.storage import StudyError
    from kws_search.search.study import check_identity, study_identity

    settings = tiny_settings(tiny_data, tiny_teacher, tmp_path, speed="latency")
    identity = study_identity(settings.data, settings.study.measures, load_space("tiny"))
    study = optuna.create_study(directions=["minimize", "maximize", "maximize"])
    for key, value in identity.items():
        study.set_user_attr(key, value)
    study.set_user_attr("speed", "per-hop latency in onnxruntime, front end included")
    study.add_trial(optuna.trial.create_trial(values=[0.1, 2.0, 2.0]))
    with pytest.raises(StudyError, match="different speed objective.*no longer makes.*new "
                                         "--study"):
        check_identity(study, identity, allow_changes=False)
    check_identity(study, identity, allow_changes=True)  # on purpose: recorded
    assert study.user_attrs["changes"][0]["changed"] == ["speed objective"]


def test_a_study_scored_on_a_remade_cross_folder_is_not_resumed(tiny_data, tiny_teacher,
                                                                tiny_settings, make_dataset,
                                                                tmp_path):
    """Its trials' cross-engine numbers are on the clips as they were; new trials would be
    scored on other clips under the same folder name."""
    import shutil

    from kws_search.search.space import load_space
    from kws_search.search.storage import StudyError
    from kws_search.search.study import check_identity, study_identity

    cross = make_dataset(tmp_path / "cross", speakers=3, seed=9)
    settings = tiny_settings(tiny_data, tiny_teacher, tmp_path, cross_data=cross)
    space = load_space("tiny")
    study = optuna.create_study(directions=["minimize", "maximize", "maximize"])
    identity = study_identity(settings.data, settings.study.measures, space)
    check_identity(study, identity, allow_changes=False)
    study.add_trial(optuna.trial.create_trial(values=[0.1, 2.0, 2.0]))
    again = study_identity(settings.data, settings.study.measures, space)  # read again
    check_identity(study, again, allow_changes=False)  # same clips

    shutil.rmtree(cross)
    make_dataset(cross, speakers=3, seed=10)
    remade = study_identity(settings.data, settings.study.measures, space)
    with pytest.raises(StudyError, match="different cross-engine folder.*--no-cross-data"):
        check_identity(study, remade, allow_changes=False)
    # scoring nothing more mixes nothing: it resumes
    check_identity(study, study_identity(replace(settings.data, cross_data=None),
                                         settings.study.measures, space),
                   allow_changes=False)
    check_identity(study, remade, allow_changes=True)  # on purpose: recorded
    assert study.user_attrs["changes"][0]["changed"] == ["cross-engine folder"]
