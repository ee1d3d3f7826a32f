"""What the command line offers before anything heavy is imported.

Sampler names, pick rules, default places, the default quality bar and the heartbeat interval:
`kws-search --help` and argparse's `choices=` read them without importing torch or Optuna, and
the modules that implement them import them from here, so each is defined once.
"""

from __future__ import annotations

from pathlib import Path

# the description an exported file carries: the TorchScript extra file, the ONNX metadata key
EXPORT_INFO = "kws_search.json"
SAMPLERS = ("gp-tpe", "gp", "tpe", "nsga2", "random")  # the first is the default
RULES = ("balanced", "fastest", "smallest", "best")  # how `export` picks a trial of the front
# the speed-up objective: MACs of the whole pipeline, of the networks alone (the hand-made
# searches' and older studies' measure), or measured per-hop time
SPEEDS = ("macs", "model-macs", "latency")
RUNTIMES = ("onnxruntime", "torchscript")  # where `--speed latency` measures
# the form of the exported ONNX graph, part of a latency study's identity: a new form changes
# what a hop costs, and students and teacher not by the same factor (2: the short graph)
ONNX_GRAPH = 2
ONNX_MODULES = ("onnx", "onnxruntime", "onnxscript")  # the `onnx` extra
QUALITY_MARGIN = 1.1  # the default bar: students within 1.1x the teacher's validation quality
FINALISTS = 6  # students of the finished search trained again to convergence (run --finalists)
HEARTBEAT_INTERVAL = 30  # seconds between a running trial's heartbeats
GRACE_PERIOD = 90  # seconds without a heartbeat before the trial is failed and retried


def speed_objective(speed: str, runtime: str) -> str:
    """What a study's speed-up measures, as stored in its identity."""
    if speed == "macs":
        return "macs, front end included"
    if speed == "model-macs":
        return "macs, networks only"
    graph = f" (ONNX graph {ONNX_GRAPH})" if runtime == "onnxruntime" else ""
    return f"per-hop latency in {runtime}{graph}, front end included"


def missing_onnx() -> list[str]:
    """Modules of the `onnx` extra that are not installed."""
    import importlib.util

    return [m for m in ONNX_MODULES if importlib.util.find_spec(m) is None]


def default_storage(study: str, studies_dir: Path | str = "studies") -> str:
    """SQLite URL of the study's own database under `studies/`."""
    path = Path(studies_dir) / f"{study}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def teacher_path(checkpoints: Path | str, dataset_root: Path | str) -> Path:
    """Default teacher file: one per dataset folder name."""
    return Path(checkpoints) / f"teacher-{Path(dataset_root).resolve().name}.pt"
