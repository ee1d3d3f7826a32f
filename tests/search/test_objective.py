"""The objective on a hand-built context: sizes from the architecture, the quality bar, and
failures that are recorded rather than counted feasible."""

from __future__ import annotations

import math

import optuna
import pytest
import torch
from optuna.trial import TrialState, create_trial

from kws_search.distill import teacher_outputs
from kws_search.errors import KwsSearchError
from kws_search.geometry import StreamGeometry
from kws_search.measure import au_fa_fr, count_macs, frontend_frame_macs, predict_deployed
from kws_search.models import CRNN, CRNNConfig
from kws_search.options import QUALITY_MARGIN
from kws_search.quantize import quantized_structure, stored_bytes
from kws_search.search import objective as objective_module
from kws_search.search.attrs import DIRECTIONS, feasible
from kws_search.search.context import SearchContext
from kws_search.search.fidelity import FINAL_OF
from kws_search.search.objective import make_objective
from kws_search.search.settings import Measures
from kws_search.search.space import parse_space
from kws_search.train import NonFiniteLoss

# Every value fixed, so the student is known; n_mels 64 differs from the features' 40 on
# purpose (students read the features the teacher was trained on).
FIXED = """
model: {cnn_channels: 2, kernel_time: 10, stride_freq: 4, hidden: 4, layers: 1, n_mels: 64}
distill: {kd_weight: 0.5, temperature: 2.0}
train: {epochs: 1, lr: 5.0e-3, batch_size: 32, spec_augment: false}
quant: {mode: int8}
"""
STUDENT = CRNNConfig(cnn_channels=2, kernel_time=10, stride_freq=4, hidden=4, layers=1)
TEACHER = {"macs": 5_000_000, "frontend_macs": 1_000_000, "bytes": 200_000, "latency_ms": 2.0}


def tiny_teacher_model() -> CRNN:
    torch.manual_seed(0)
    return CRNN(CRNNConfig(cnn_channels=4, hidden=8, layers=1)).eval()


@pytest.fixture(scope="module")
def outputs(tiny_features):
    return teacher_outputs(tiny_teacher_model(), tiny_features.train)


def context_for(features, outputs, val_quality: float, **measures) -> SearchContext:
    """A context with the teacher's numbers above; `measures` name fields of `Measures`."""
    return SearchContext(features, tiny_teacher_model(), outputs,
                         {**TEACHER, "val_quality": val_quality},
                         calibration=features.train[0, :16].float(),
                         measures=Measures(**measures))


def run_one(context: SearchContext, final: bool = False,
            **optimize) -> optuna.trial.FrozenTrial:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(directions=list(DIRECTIONS))
    if final:  # a finalist: the queue marks it as one
        study.enqueue_trial({}, user_attrs={FINAL_OF: 0})
    study.optimize(make_objective(context, parse_space(FIXED)), n_trials=1, **optimize)
    return study.get_trials()[0]


@pytest.mark.parametrize("constraints, expected", [
    (None, False), ([], False), ([0.0], True), ([-0.2], True), ([1e-9], False),
    ([-0.1, 0.2], False), ([-0.1, -0.2], True),
])
def test_feasible_needs_every_constraint_within_the_bar(constraints, expected):
    system = {} if constraints is None else {"constraints": constraints}
    trial = create_trial(values=[0.1, 2.0, 2.0], system_attrs=system)
    assert feasible(trial) is expected


def test_a_student_is_sized_trained_measured_and_judged_against_the_bar(tiny_features, outputs):
    lenient = run_one(context_for(tiny_features, outputs, val_quality=1.0))
    assert lenient.state == TrialState.COMPLETE
    quality, speedup, compression = lenient.values
    attrs = lenient.user_attrs
    # the size follows from the architecture, on the teacher's 40 mel bands, not the space's 64
    frames = tiny_features.config.frames
    assert attrs["macs"] == count_macs(CRNN(STUDENT), 40, frames)
    assert attrs["bytes"] == stored_bytes(quantized_structure(STUDENT, "int8"))
    # the speed-up objective counts the whole pipeline, front end included: a 10-frame kernel
    # at stride 8 reads steps x 8 + 2 frames, each a window, FFT, power, mel matrix and log
    read = StreamGeometry.of(STUDENT, tiny_features.config).frames_read(frames)
    assert read == STUDENT.steps(frames) * 8 + 2
    assert attrs["frontend_macs"] == read * frontend_frame_macs(tiny_features.config)
    whole = (TEACHER["macs"] + TEACHER["frontend_macs"]) / (attrs["macs"] + attrs["frontend_macs"])
    assert speedup == attrs["speedup"] == whole
    assert attrs["model_speedup"] == TEACHER["macs"] / attrs["macs"] > speedup
    assert compression == attrs["compression"] == TEACHER["bytes"] / attrs["bytes"]
    assert attrs["latency_speedup"] == TEACHER["latency_ms"] / attrs["latency_ms"]
    assert quality == attrs["val_quality"] and 0 <= quality <= 1
    assert attrs["quant"] == "int8" and attrs["best_epoch"] == 1
    assert lenient.system_attrs["constraints"] == [quality - QUALITY_MARGIN * 1.0]
    assert feasible(lenient)
    # no artifact folder, no cross set: nothing stored, nothing cross-scored
    assert "checkpoint_artifact" not in attrs and not any(k.startswith("cross_") for k in attrs)
    # a search trial is never scored on test: that split judges the answer alone
    assert not {"test_quality", "teacher_ratio"} & set(attrs)

    # The same trial against a bar nobody reaches: the same (seeded) student, now infeasible.
    strict = run_one(context_for(tiny_features, outputs, val_quality=-1.0))
    assert strict.values == lenient.values
    assert strict.system_attrs["constraints"] == [quality + QUALITY_MARGIN]
    assert not feasible(strict)

    # `run --margin`: the bar is that multiple of the teacher's validation quality, so a teacher
    # 1.5x better than this student fails it at 1.1x and passes it at 2x.
    teacher = quality / 1.5
    tight = run_one(context_for(tiny_features, outputs, val_quality=teacher))
    loose = run_one(context_for(tiny_features, outputs, val_quality=teacher, margin=2.0))
    assert tight.values == loose.values == lenient.values
    assert not feasible(tight) and feasible(loose)
    assert loose.system_attrs["constraints"] == [pytest.approx(quality - 2.0 * teacher)]


def test_a_finalist_is_judged_on_test_against_the_teacher_on_the_same_clips(tiny_features,
                                                                           outputs):
    """The answer: a finalist's test quality over the teacher's, with the paired interval."""
    trial = run_one(context_for(tiny_features, outputs, val_quality=1.0), final=True)
    attrs = trial.user_attrs
    labels = tiny_features.test_labels.numpy()
    teacher = au_fa_fr(predict_deployed(tiny_teacher_model(), tiny_features.test), labels)
    assert attrs["teacher_ratio"] == pytest.approx(attrs["test_quality"] / teacher)
    assert attrs["teacher_ratio_lo"] <= attrs["teacher_ratio"] <= attrs["teacher_ratio_hi"]
    assert attrs["stage"] == "final"


def test_a_diverging_student_fails_with_its_reason_and_no_constraint(tiny_features, outputs,
                                                                     monkeypatch):
    def diverge(*args, **kwargs):
        raise NonFiniteLoss("loss is nan at step 3; lower the learning rate")

    monkeypatch.setattr(objective_module, "train", diverge)
    trial = run_one(context_for(tiny_features, outputs, 1.0), catch=(NonFiniteLoss,))
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["fail_reason"] == "loss is nan at step 3; lower the learning rate"
    # its size was known before training, so it is still on record
    assert trial.user_attrs["model_speedup"] == TEACHER["macs"] / trial.user_attrs["macs"]
    assert "constraints" not in trial.system_attrs and not feasible(trial)


def test_a_non_finite_validation_quality_fails_the_trial(tiny_features, outputs, monkeypatch):
    monkeypatch.setattr(objective_module, "train", lambda *args, **kwargs: None)
    monkeypatch.setattr(objective_module, "measure_model",
                        lambda *args: {"val_quality": math.nan, "threshold": 0.5})
    with pytest.raises(NonFiniteLoss, match="validation quality is nan; the student diverged"):
        run_one(context_for(tiny_features, outputs, 1.0))


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["onnxruntime", "torchscript"])
def test_latency_speed_is_measured_per_hop_in_the_runtime(tiny_features, outputs, runtime):
    context = context_for(tiny_features, outputs, 1.0, speed="latency", runtime=runtime)
    context.teacher_metrics["hop_us"] = 50.0
    trial = run_one(context)
    attrs = trial.user_attrs
    assert trial.state == TrialState.COMPLETE and attrs["hop_us"] > 0
    assert trial.values[1] == attrs["speedup"] == 50.0 / attrs["hop_us"]
    # the MAC ratios stay on record beside it
    assert attrs["model_speedup"] == TEACHER["macs"] / attrs["macs"]


def test_model_macs_speed_is_the_networks_alone(tiny_features, outputs):
    trial = run_one(context_for(tiny_features, outputs, 1.0, speed="model-macs"))
    assert trial.values[1] == TEACHER["macs"] / trial.user_attrs["macs"]


def test_a_front_end_the_worker_has_no_features_for_is_refused(tiny_features, outputs):
    study = optuna.create_study(directions=list(DIRECTIONS))
    space = parse_space(FIXED.replace("n_mels: 64}", "}") + "front_end: {n_fft: 200}\n")
    objective = make_objective(context_for(tiny_features, outputs, 1.0), space)
    with pytest.raises(KwsSearchError, match="no features for front end n_fft 200, n_mels 40"):
        study.optimize(objective, n_trials=1)
