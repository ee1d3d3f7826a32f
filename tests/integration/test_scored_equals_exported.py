"""What the search records for a student is what its exported file computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from optuna.trial import TrialState

from kws_search.data.features import load_features_file
from kws_search.deploy.onnx import export_onnx
from kws_search.deploy.torchscript import export_checkpoint, load_exported
from kws_search.evaluate import evaluate_file
from kws_search.measure import au_fa_fr, predict
from kws_search.search.select import fetch_checkpoint
from kws_search.search.workers import run_search

TINY = (Path(__file__).parents[2] / "search_spaces" / "tiny.yaml").read_text()
MODES = "mode: {type: categorical, choices: [none, int8, static_int8]}"
SPACE = TINY.replace(MODES, "mode: {type: categorical, choices: [int8, static_int8]}")


@pytest.mark.slow
def test_recorded_validation_quality_is_the_exported_files(tiny_data, tiny_teacher,
                                                             tiny_settings, tmp_path):
    """Dynamic int8 students: the scored path and the exported file agree exactly, while the
    batched whole-clip path (what training uses) gives other probabilities."""
    space = tmp_path / "int8.yaml"
    space.write_text(SPACE)
    settings = tiny_settings(tiny_data, tiny_teacher, tmp_path, space=str(space), trials=2)
    study = run_search(settings, progress=False)
    features = load_features_file(next(settings.data.cache_dir.glob("features-*.pt")))
    frames = features.validation.float()  # the clips the trial was scored on
    labels = features.validation_labels.numpy()
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert {t.user_attrs["quant"] for t in trials} <= {"int8", "static_int8"} and trials
    for trial in trials:
        checkpoint = fetch_checkpoint(study, trial, tmp_path / f"trial-{trial.number}.pt")
        exported = export_checkpoint(checkpoint, tmp_path / f"trial-{trial.number}.ts")
        module, _ = load_exported(exported)
        with torch.inference_mode():
            probs = torch.softmax(module.model.stepwise(frames), -1)[:, 1].numpy()
        assert au_fa_fr(probs, labels) == trial.user_attrs["val_quality"]
        batched = predict(module.model, frames)  # one call for all clips and steps
        gap = np.abs(batched - probs).max()
        print(f"trial {trial.number} ({trial.user_attrs['quant']}): recorded val quality "
              f"{trial.user_attrs['val_quality']:.6g}, exported file's "
              f"{au_fa_fr(probs, labels):.6g}; batched probabilities differ by up to {gap:.2g}")
        assert gap > 1e-5


@pytest.mark.slow
def test_evaluate_on_the_exported_files_gives_the_recorded_quality(tiny_data, tiny_teacher,
                                                                   tiny_settings, tmp_path):
    """`kws-search evaluate` of a float student's TorchScript file gives the quality the search
    recorded, to the last bit; its ONNX file (the same model as an ONNX graph, streamed block
    by block) gives it to float rounding; and so do the teacher's."""
    space = tmp_path / "float.yaml"
    space.write_text(TINY.replace(MODES, "mode: {type: categorical, choices: [none]}"))
    settings = tiny_settings(tiny_data, tiny_teacher, tmp_path, space=str(space), trials=1)
    study = run_search(settings, progress=False)
    trial = study.get_trials(states=(TrialState.COMPLETE,))[0]
    checkpoint = fetch_checkpoint(study, trial, tmp_path / "trial.pt")
    for source, recorded in ((checkpoint, trial.user_attrs["val_quality"]),
                             (tiny_teacher, study.user_attrs["teacher"]["val_quality"])):
        scripted = export_checkpoint(source, tmp_path / f"{source.stem}.ts")
        onnx_file, _ = export_onnx(source, tmp_path / f"{source.stem}.onnx")
        of_script = evaluate_file(scripted, tiny_data, "validation")["quality"]
        of_onnx = evaluate_file(onnx_file, tiny_data, "validation")["quality"]
        print(f"{source.name}: recorded {recorded:.9g}, TorchScript {of_script:.9g}, "
              f"ONNX {of_onnx:.9g}")
        assert of_script == recorded
        assert of_onnx == pytest.approx(recorded, rel=1e-3)
