"""The search context: cross-engine clips are scored for the record and never decide anything;
students may read a front end of their own."""

from __future__ import annotations

import pytest
from optuna.trial import TrialState

from kws_search.checkpoint import read_checkpoint
from kws_search.data.front_end import FeatureConfig
from kws_search.deploy.latency import probe_audio
from kws_search.deploy.onnx import export_onnx
from kws_search.deploy.onnx_runtime import OnnxStream
from kws_search.measure import frontend_macs
from kws_search.models import CRNNConfig
from kws_search.report.pages import write_report
from kws_search.report.summary import study_summary
from kws_search.search.progress import feasible_front
from kws_search.search.select import fetch_checkpoint
from kws_search.search.space import load_space
from kws_search.search.workers import run_search


def test_cross_data_is_scored_and_recorded_only(tiny_data, tiny_teacher, tiny_study, tmp_path,
                                                capsys, make_dataset, tiny_settings):
    cross = make_dataset(tmp_path / "cross", speakers=3, seed=9)  # other "voices"
    for name in ("validation_list.txt", "testing_list.txt"):
        (cross / name).unlink()  # an evaluation-only folder: every clip is scored
    settings = tiny_settings(tiny_data, tiny_teacher, tmp_path, cross_data=cross)
    study = run_search(settings, progress=False)
    teacher = study.user_attrs["teacher_cross"]
    assert study.user_attrs["cross_data"] == str(cross.resolve())
    assert {"quality", "quality_norm", "detected", "fa"} <= set(teacher)
    _, plain = tiny_study
    for trial, same in zip(study.get_trials(), plain.get_trials(), strict=True):
        attrs = trial.user_attrs
        assert 0 <= attrs["cross_quality"] <= 1 and 0 <= attrs["cross_fa"] <= 1
        assert attrs["cross_detected"] in {k / 6 for k in range(7)}  # 3 speakers x 2 clips
        assert attrs["cross_quality_norm"] == attrs["cross_quality"] / (0.2 * 0.8)
        # Recorded only: the study without the cross folder ran the same students to the
        # same values and constraints.
        assert (trial.params, trial.values) == (same.params, same.values)
        assert trial.system_attrs["constraints"] == same.system_attrs["constraints"]

    report = write_report(settings.study.name, settings.study.storage, tmp_path / "report",
                          png=False)
    assert {"cross_quality", "cross_detected"} <= set(report.front.columns)
    assert {"cross_quality", "cross_quality_norm", "cross_detected", "cross_fa"} <= set(
        report.trials.columns)
    page = (report.folder / "front.md").read_text(encoding="utf-8")
    assert f"cross-engine set {cross.resolve()}" in page and "teacher quality" in page
    best = feasible_front(study)[0]
    row = report.front[report.front["number"] == best.number].iloc[0]
    assert row["cross_quality"] == best.user_attrs["cross_quality"]
    printed = "\n".join(study_summary(study))
    assert f"teacher on {cross.resolve()}: quality" in printed
    assert "cross_quality" in printed and "val 90% CI" in printed


@pytest.mark.slow
def test_students_may_read_a_front_end_of_their_own(tiny_data, tiny_teacher, tmp_path,
                                                    tiny_settings):
    """A space's `front_end` gives students their own FFT size and mel bands over the same
    train copies: their sizes count that front end, and their checkpoints and exports carry
    it."""
    space = tmp_path / "own.yaml"
    space.write_text(load_space("tiny").text + "front_end:\n"
                     "  n_fft: {type: categorical, choices: [400, 200]}\n  n_mels: 16\n")
    settings = tiny_settings(tiny_data, tiny_teacher, tmp_path, space=str(space), trials=4)
    study = run_search(settings, progress=False)
    trials = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert {t.params["n_fft"] for t in trials} == {400, 200}  # the seeds read 400
    teacher = FeatureConfig.from_dict(read_checkpoint(tiny_teacher)["features"])
    for trial in trials:
        own = teacher.with_front_end(trial.params["n_fft"], 16)
        path = fetch_checkpoint(study, trial, tmp_path / f"trial{trial.number}.pt")
        state = read_checkpoint(path)
        assert FeatureConfig.from_dict(state["features"]) == own and state["model"]["n_mels"] == 16
        config = CRNNConfig.from_dict(state["model"])
        assert trial.user_attrs["frontend_macs"] == frontend_macs(config, own)
        onnx_file, info = export_onnx(path, tmp_path / f"trial{trial.number}.onnx")
        assert info["features"]["n_fft"] == trial.params["n_fft"]
        assert OnnxStream(onnx_file)(probe_audio(own)).size > 0


def test_a_latency_study_times_its_teacher_once(tiny_data, tiny_teacher, tiny_settings,
                                                tmp_path):
    """Every worker, resume and joining machine divides by the teacher time the study holds,
    never by a timing of its own (so one study's speed-ups share one denominator)."""
    import optuna

    from kws_search.search.context import build_context
    from kws_search.search.study import stored_teacher_hop_us

    settings = tiny_settings(tiny_data, tiny_teacher, tmp_path, speed="latency",
                             runtime="torchscript")
    fresh = build_context(settings.data, settings.study, progress=False)
    assert fresh.teacher_metrics["hop_us"] > 0  # a new study times the teacher
    study = optuna.create_study(directions=["minimize", "maximize", "maximize"])
    assert stored_teacher_hop_us(study) is None
    study.set_user_attr("teacher", {"hop_us": 123.0, "val_quality": 0.1})
    joined = build_context(settings.data, settings.study, progress=False,
                           teacher_hop_us=stored_teacher_hop_us(study))
    assert joined.teacher_metrics["hop_us"] == 123.0
