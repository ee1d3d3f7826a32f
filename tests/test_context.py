"""The search context: cross-engine clips are scored for the record and never decide anything."""

from __future__ import annotations

from kws_search.commands.run import print_front
from kws_search.report import write_report
from kws_search.study import feasible_front
from kws_search.workers import run_search


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

    report = write_report(settings.study, settings.storage, tmp_path / "report", png=False)
    assert {"cross_quality", "cross_detected"} <= set(report.front.columns)
    assert {"cross_quality", "cross_quality_norm", "cross_detected", "cross_fa"} <= set(
        report.trials.columns)
    page = (report.folder / "front.md").read_text(encoding="utf-8")
    assert f"cross-engine set {cross.resolve()}" in page and "teacher quality" in page
    best = feasible_front(study)[0]
    row = report.front[report.front["number"] == best.number].iloc[0]
    assert row["cross_quality"] == best.user_attrs["cross_quality"]
    print_front(study)
    printed = capsys.readouterr().out
    assert f"teacher on {cross.resolve()}: quality" in printed
    assert "cross_quality" in printed and "val 90% CI" in printed
