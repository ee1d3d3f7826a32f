"""`kws-search evaluate`: the same numbers as the pipeline, on folders with or without lists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from kws_search.checkpoint import load_model
from kws_search.cli import main
from kws_search.data.datasets import DataError, scan_dataset
from kws_search.data.front_end import FeatureConfig
from kws_search.deploy.torchscript import export_checkpoint
from kws_search.evaluate import evaluate_file, load_eval_set, summarize
from kws_search.measure import split_quality


def test_test_split_quality_equals_the_pipelines(tiny_teacher, tiny_data, tiny_features):
    model, state = load_model(tiny_teacher)
    result = evaluate_file(tiny_teacher, tiny_data)
    assert result["quality"] == pytest.approx(split_quality(model, *tiny_features.split("test")),
                                              rel=1e-3)
    assert result["split"] == "test" and result["keyword_clips"] == 4
    assert result["threshold"] == pytest.approx(state["metrics"]["threshold"])


def test_folder_without_lists_scores_every_clip(tiny_teacher, tiny_data, tmp_path):
    folder = tmp_path / "mine"
    shutil.copytree(tiny_data, folder)
    (folder / "validation_list.txt").unlink()
    (folder / "testing_list.txt").unlink()
    result = evaluate_file(tiny_teacher, folder, noise=False)
    assert result["split"] == "all" and result["clips"] == 120 and not result["noise"]
    with pytest.raises(DataError, match="drop --split"):
        evaluate_file(tiny_teacher, folder, split="validation")


def test_exported_file_scores_like_its_checkpoint(tiny_teacher, tiny_data, tmp_path):
    exported = export_checkpoint(tiny_teacher, tmp_path / "teacher-stream.pt")
    a = evaluate_file(tiny_teacher, tiny_data)
    b = evaluate_file(exported, tiny_data)
    assert b["kind"] == "exported" and a["threshold"] == pytest.approx(b["threshold"])
    # the stream pads the first frames with zeros instead of reflecting: close, not equal
    assert b["quality"] == pytest.approx(a["quality"], abs=0.02)


def test_summary_counts_detections_false_alarms_and_misses(tiny_data):
    eval_set = load_eval_set(tiny_data, "sheila", FeatureConfig(), noise=False)
    labels = eval_set.labels
    probs = labels.astype(float) * 0.9
    probs[np.flatnonzero(labels)[0]] = 0.1  # one miss
    probs[np.flatnonzero(labels == 0)[:2]] = 0.95  # two false alarms
    result = summarize(probs, eval_set, 0.5)
    assert result["detected"] == labels.sum() - 1
    assert result["false_alarms"] == 2 and sum(result["false_alarms_per_word"].values()) == 2
    assert sum(m for m, _ in result["misses_per_speaker"].values()) == 1
    share = labels.mean()
    assert result["quality_norm"] == pytest.approx(result["quality"] / (share * (1 - share)))


def test_summary_gives_what_a_threshold_set_on_the_folder_detects(tiny_data):
    """Keyword clips of unheard voices can rank well and still score under the model's own
    threshold: the summary tells the two apart."""
    eval_set = load_eval_set(tiny_data, "sheila", FeatureConfig(), noise=False)
    labels = eval_set.labels.astype(bool)
    rng = np.random.default_rng(0)
    probs = np.where(labels, rng.uniform(0.3, 0.6, labels.size), rng.uniform(0, 0.2, labels.size))
    probs[np.flatnonzero(~labels)[0]] = 0.5  # one negative among the keywords: over 1%
    result = summarize(probs, eval_set, 0.9)
    assert result["detected"] == 0  # all under the model's threshold
    own = result["own_threshold"]
    assert result["own_false_alarms"] == (probs[~labels] >= own).sum() <= 0.01 * (~labels).sum()
    assert result["own_detected"] == (probs[labels] >= own).sum()
    assert result["own_detected"] == (probs[labels] > 0.5).sum()  # the lowest such threshold


def test_cli_json_and_errors(tiny_teacher, tiny_data, tmp_path, capsys):
    assert main(["evaluate", str(tiny_teacher), "--data", str(tiny_data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("quality", "fa", "fr", "clips", "keyword_clips", "detected", "threshold",
                "own_threshold", "own_detected", "own_false_alarms"):
        assert key in result
    assert main(["evaluate", str(tiny_teacher), "--data", str(tmp_path / "nowhere")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "none.pt"), "--data", str(tiny_data)]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", str(tiny_teacher), "--threshold", "1.5"])
    assert "within 0..1" in capsys.readouterr().err


def test_evaluation_only_folders_are_refused_for_training(tiny_data, tmp_path):
    folder = tmp_path / "eval"
    shutil.copytree(tiny_data, folder)
    (folder / "synth.json").write_text(json.dumps({"engine": "festival",
                                                   "evaluation_only": True}))
    with pytest.raises(DataError, match="evaluation-only"):
        scan_dataset(folder, "sheila")
    assert load_eval_set(Path(folder), "sheila", FeatureConfig()).split == "all"


def test_a_synthesized_folder_is_also_scored_per_engine(tiny_teacher, tiny_data, tmp_path):
    folder = tmp_path / "engines"
    shutil.copytree(tiny_data, folder)
    speakers = sorted({p.name.split("_nohash_")[0] for p in folder.glob("*/*.wav")
                       if not p.parent.name.startswith("_")})
    engine_of = {s: ("pico" if i % 2 else "espeak") for i, s in enumerate(speakers)}
    (folder / "synth.json").write_text(json.dumps({"speaker_engine": engine_of}))
    result = evaluate_file(tiny_teacher, folder)
    per = result["per_engine"]
    assert set(per) <= {"espeak", "pico"} and per
    assert sum(e["clips"] for e in per.values()) == result["clips"]
    assert sum(e["detected"] for e in per.values()) == result["detected"]
    assert sum(e["false_alarms"] for e in per.values()) == result["false_alarms"]
    assert evaluate_file(tiny_teacher, tiny_data)["per_engine"] == {}  # no synth.json
