"""Peak RAM of streaming models: the count from the architecture (`memory.peak_ram_bytes`,
what the search checks `--max-ram` against) beside its check, a liveness count over the
exported ONNX graph's tensors (`memory.graph_peak_bytes`), with the state apart.

    python bench/bench_ram.py checkpoints/teacher-synth.pt checkpoints/budget10-trial57.pt
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from kws_search.checkpoint import read_checkpoint
from kws_search.data.front_end import FeatureConfig
from kws_search.deploy.onnx import export_onnx
from kws_search.errors import run_script
from kws_search.geometry import StreamGeometry
from kws_search.memory import FLOAT, graph_peak_bytes, peak_ram_bytes, state_floats
from kws_search.models import CRNNConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path,
                        help="teacher or trial checkpoints (`kws-search export` leaves one)")
    args = parser.parse_args()
    print(f"{'model':40s} {'counted':>9s} {'graph':>9s} {'counted/graph':>13s} {'state':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.checkpoints:
            state = read_checkpoint(path)
            config = CRNNConfig.from_dict(state["model"])
            features = FeatureConfig.from_dict(state["features"])
            onnx_file, _ = export_onnx(path, Path(tmp) / f"{path.stem}.onnx")
            counted, graph = peak_ram_bytes(config, features), graph_peak_bytes(onnx_file)
            window = StreamGeometry.of(config, features).window_steps(1.0)
            kept = FLOAT * sum(state_floats(config, features, window).values())
            print(f"{path.name:40s} {counted:9d} {graph:9d} {counted / graph:13.3f} "
                  f"{kept:8d}")


if __name__ == "__main__":
    run_script(main)
