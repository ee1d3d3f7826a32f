"""Per-hop and whole-clip latency of the exported teacher and the front students, TorchScript
against ONNX Runtime, front end included.

Usage: python bench/bench_latency.py [--study kws] [--storage sqlite:///studies/kws.db]
           [--teacher FILE] [--repeats 15] [--students 6] [--trials N ...] [--smallest]

Every model is exported both ways from its checkpoint. A student whose checkpoint cannot be
loaded (an older kws-search's quantized file) is rebuilt from its trial's architecture and
mode with random weights: latency does not depend on the weights. One thread, batch 1; all
models run interleaved, repeat after repeat, and the table shows medians. Each runtime is timed
in a block of its own: TorchScript's runs between ONNX Runtime's evict its working set and added
4-7 us per hop to every ONNX model (measured on this CPU), which no deployment that ships one
runtime pays. For the same reason each timed run follows an untimed run of the same model: a
device streams one model, so what counts is its steady state, not the cache misses the model
timed before it leaves (up to 1.5 us per hop for a small student).
"Per hop" streams 1 s in 10 ms hops, going on with one stream (steady state: warm-up blocks
are paid once per stream), total / 100 hops; "clip" is the same second in one call from a
fresh state. Speed-ups compare a student with the teacher in the same runtime;
the last column compares the student in ONNX Runtime with the teacher in TorchScript (the
export this project had before). `--smallest` adds the fewest-MACs student the study's search
space holds (sizes at their lowest, strides at their highest, a plain RNN, its cheapest front
end), rebuilt with random weights: no trial of that space reads fewer frames or calls the
graph less often, so its ratio bounds what a search can find. Last line: `best per-hop
speed-up: <x>x (<runtime>, trial <n>)`, the best same-runtime ratio of a trial.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import optuna
import torch
from optuna.distributions import CategoricalDistribution, IntDistribution

from kws_search.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from kws_search.data.front_end import FeatureConfig
from kws_search.deploy.latency import export_for, probe_audio, runners, timed
from kws_search.errors import run_script
from kws_search.measure import count_macs, frontend_macs
from kws_search.models import CRNN, CRNNConfig
from kws_search.options import RUNTIMES
from kws_search.quantize import calibrate, prepare_for_training
from kws_search.search.select import fetch_checkpoint
from kws_search.search.space import FrontEnd, SearchSpace, parse_space
from kws_search.search.storage import load_study

warnings.filterwarnings("ignore")
ARCHITECTURE = ("cnn_channels", "kernel_freq", "kernel_time", "stride_freq", "stride_time",
                "rnn", "hidden", "layers")


def student_checkpoint(study: optuna.Study, trial: optuna.trial.FrozenTrial,
                       features: FeatureConfig, folder: Path) -> tuple[Path, str]:
    """The trial's checkpoint, or its architecture rebuilt with random weights."""
    try:
        path = fetch_checkpoint(study, trial, folder / f"trial{trial.number}.pt")
        read_checkpoint(path)
        return path, "trained"
    except CheckpointError:
        pass
    features = FrontEnd(trial.params.get("n_fft", 0), trial.params.get("n_mels", 0)).features(
        features)
    config = CRNNConfig(n_mels=features.n_mels,
                        **{k: trial.params[k] for k in ARCHITECTURE if k in trial.params})
    mode = trial.user_attrs.get("quant", trial.params.get("mode", "none"))
    return rebuilt(config, mode, features, folder / f"trial{trial.number}-rebuilt.pt",
                   trial.number), "rebuilt"


def rebuilt(config: CRNNConfig, mode: str, features: FeatureConfig, path: Path,
            seed: int) -> Path:
    """A checkpoint of `config` in `mode` with random weights (latency does not see them)."""
    torch.manual_seed(seed)
    model = prepare_for_training(CRNN(config), mode).eval()
    calibration = torch.randn(16, config.n_mels, features.frames) * 3 - 5
    return save_checkpoint(path, calibrate(model, mode, calibration), kind="student",
                           model_config=config, feature_config=features, keyword="keyword",
                           dataset_fingerprint="-", quant=mode)


def smallest_student(space: SearchSpace, teacher: FeatureConfig,
                     ) -> tuple[CRNNConfig, FeatureConfig]:
    """The fewest-MACs architecture `space` holds and its cheapest front end: sizes at their
    lowest, strides at their highest, a plain RNN where the space may choose one, the
    shortest FFT with the fewest mel bands."""
    features = min(space.front_ends(teacher), key=lambda c: (c.n_fft, c.n_mels))

    def fewest(key: str, value: object) -> object:
        if isinstance(value, IntDistribution):
            return value.high if key.startswith("stride") else value.low
        if isinstance(value, CategoricalDistribution):
            return "rnn" if "rnn" in value.choices else value.choices[0]
        return value
    return CRNNConfig(n_mels=features.n_mels, **{
        k: fewest(k, v) for k, v in space.sections.get("model", {}).items()}), features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="kws")
    parser.add_argument("--storage", default=None,
                        help="default: sqlite:///studies/<study>.db")
    parser.add_argument("--teacher", type=Path, default=None,
                        help="default: the teacher the study was run with")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--students", type=int, default=6,
                        help="front students to time, fastest (by MACs) first")
    parser.add_argument("--trials", type=int, nargs="*", default=[],
                        help="more trials to time beside the front (any complete trial)")
    parser.add_argument("--smallest", action="store_true",
                        help="also time the fewest-MACs student of the study's space "
                             "(random weights): the bound on any trial's speed-up")
    args = parser.parse_args()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    study = load_study(args.study, args.storage or f"sqlite:///studies/{args.study}.db")
    if args.teacher is None:
        args.teacher = Path(study.user_attrs["teacher_path"])
    teacher_state = read_checkpoint(args.teacher)
    features = FeatureConfig.from_dict(teacher_state["features"])
    front = sorted(study.best_trials, key=lambda t: -t.values[1])[:args.students]
    front += [study.trials[n] for n in args.trials if n not in {t.number for t in front}]
    if not front and not args.smallest:
        raise SystemExit(f"study {args.study} has no feasible front yet; name complete trials "
                         "with --trials N ..., or pass --smallest")
    audio = probe_audio(features)
    hops = audio.size // features.hop_length
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = {"teacher": (args.teacher, "trained")}
        for trial in front:
            models[f"trial {trial.number}"] = student_checkpoint(study, trial, features, folder)
        if args.smallest:
            space = parse_space(study.user_attrs["space"])
            smallest, cheapest = smallest_student(space, features)
            models["smallest"] = (rebuilt(smallest, "none", cheapest, folder / "smallest.pt",
                                          0), "rebuilt")
        runs, info = {}, {}
        for name, (checkpoint, origin) in models.items():
            state = read_checkpoint(checkpoint)
            config = CRNNConfig.from_dict(state["model"])
            own = FeatureConfig.from_dict(state["features"])
            macs = count_macs(CRNN(config), own.n_mels, own.frames)
            info[name] = {"quant": state.get("quant", "none"), "origin": origin,
                          "front": f"{own.n_fft}/{own.n_mels}",
                          "macs": macs + frontend_macs(config, own), "model_macs": macs}
            for runtime in RUNTIMES:
                calls = runners(export_for(checkpoint, runtime, folder), runtime, audio,
                                features.hop_length)
                for kind, call in calls.items():
                    call()
                    call()  # warm up
                    runs[name, runtime, kind] = call
        times: dict[tuple[str, str, str], list[float]] = {key: [] for key in runs}
        for runtime in RUNTIMES:  # a block per runtime; within it every model each repeat
            for _ in range(args.repeats):
                for key, call in runs.items():
                    if key[1] == runtime:
                        call()  # the model before it left its own data in the caches
                        times[key].append(timed(call))
    median = {key: float(np.median(values)) for key, values in times.items()}

    def hop_us(name: str, runtime: str) -> float:
        return median[name, runtime, "hop"] / hops * 1e6

    print(f"{len(front)} students (the front, then --trials) of study {args.study}; "
          f"{args.repeats} interleaved repeats per runtime, 1 thread, medians; per hop = 1 s "
          f"streamed in {hops} hops / {hops}, one stream going on (steady state)")
    header = (f"{'model':<10} {'quant':<11} {'weights':<8} {'fft/mels':>8} {'MACs+front':>10} "
              f"{'TS us/hop':>9} {'ORT us/hop':>10} {'TS ms/clip':>10} {'ORT ms/clip':>11} "
              f"{'x TS':>6} {'x ORT':>6} {'ORT vs TS teacher':>17}")
    print(header)
    best, bound = (0.0, "", ""), (0.0, "")
    for name, row in info.items():
        ts, ort = hop_us(name, "torchscript"), hop_us(name, "onnxruntime")
        x_ts = hop_us("teacher", "torchscript") / ts
        x_ort = hop_us("teacher", "onnxruntime") / ort
        cross = hop_us("teacher", "torchscript") / ort
        print(f"{name:<10} {row['quant']:<11} {row['origin']:<8} {row['front']:>8} "
              f"{row['macs']:>10,} "
              f"{ts:>9.1f} {ort:>10.1f} {median[name, 'torchscript', 'clip'] * 1e3:>10.3f} "
              f"{median[name, 'onnxruntime', 'clip'] * 1e3:>11.3f} {x_ts:>5.2f}x {x_ort:>5.2f}x"
              f" {cross:>16.2f}x")
        if name == "smallest":
            bound = max((x_ts, "torchscript"), (x_ort, "onnxruntime"))
        elif name != "teacher":
            for ratio, runtime in ((x_ts, "torchscript"), (x_ort, "onnxruntime")):
                if ratio > best[0]:
                    best = (ratio, runtime, name.split()[-1])
    if args.smallest:
        print(f"smallest student of the space ({cheapest.n_fft}-point FFT, {cheapest.n_mels} "
              f"mels, {smallest.cnn_channels} channels, kernel {smallest.kernel_time} stride "
              f"{smallest.stride_time}, {smallest.rnn} "
              f"{smallest.hidden} x {smallest.layers}): {bound[0]:.2f}x per hop ({bound[1]}), "
              "about the most any trial of this space can reach")
    if best[0]:
        print(f"best per-hop speed-up: {best[0]:.2f}x ({best[1]}, trial {best[2]})")


if __name__ == "__main__":
    run_script(main)
