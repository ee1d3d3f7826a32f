"""Time `kws_search.data.synth.synthesize` at a given size.

Example: python bench/bench_synth.py --clips 20000 --workers 2
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from kws_search.data.synth import SynthConfig, synthesize
from kws_search.errors import run_script


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=SynthConfig.n_clips, help="total clips")
    parser.add_argument("--workers", type=int, default=SynthConfig.workers)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="dataset folder to write and keep (default: a temp dir, deleted)")
    args = parser.parse_args(argv)
    cfg = replace(SynthConfig(), n_clips=args.clips, workers=args.workers, seed=args.seed)
    tmp = None if args.out else Path(tempfile.mkdtemp(prefix="bench_synth_"))
    root = args.out or tmp / "data"
    try:
        start = time.perf_counter()
        summary = synthesize(root, cfg, progress=False)
        seconds = time.perf_counter() - start
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"clips={summary['clips']} speakers={summary['speakers']} workers={cfg.workers} "
          f"seconds={seconds:.1f} clips_per_s={summary['clips'] / seconds:.0f}")
    print(f"keyword clips per split: {summary['keyword_clips_per_split']}")
    return 0


if __name__ == "__main__":
    run_script(main)
