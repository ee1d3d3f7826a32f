"""What each speech engine of the default dataset buys, on voices nobody trained on.

    python bench/bench_engines.py --festival data/festival
    python bench/bench_engines.py --sets espeak espeak,pico,hibari --hours 1
    python bench/bench_engines.py --sets espeak,pico,hibari espeak,pico,hibari,kokoro --clips 8000
For each set of engines: synthesize the default dataset with only those engines (no answer
split: `--test-clips 0`), train the default teacher on it, and score it on the Festival folder
(evaluation only) and on its own test split: keyword clips detected and false alarms at its
stored threshold, quality / p(1-p), the ratio of the two (how much worse unheard voices are),
and, with `--hours`, false accepts per hour on a stream of the Festival folder's words and
running speech and the share of keywords missed at 0.5 per hour. Each set runs the CLI in a
process of its own, exactly as a user would; folders and teachers already made are reused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from kws_search.errors import run_script

DEFAULT_SETS = ("espeak", "espeak,pico,hibari", "espeak,pico", "espeak,hibari", "pico,hibari",
                "espeak,pico,hibari,kokoro")


def cli(*args: str, capture: bool = False) -> str:
    command = [sys.executable, "-m", "kws_search.cli", *args]
    print("$ kws-search", " ".join(args), flush=True)
    done = subprocess.run(command, check=True, text=True,
                          stdout=subprocess.PIPE if capture else None)
    return done.stdout or ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=list(DEFAULT_SETS),
                        help="engine sets, each comma-separated (default: %(default)s)")
    parser.add_argument("--festival", type=Path, default=Path("data/festival"))
    parser.add_argument("--out", type=Path, default=Path("data"),
                        help="where the per-set folders go (data/engines-<set>)")
    parser.add_argument("--hours", type=float, default=1.0,
                        help="hours of the false-accept stream (0: skip)")
    parser.add_argument("--clips", type=int, default=None,
                        help="clips per dataset (default: the default dataset's 24,000); a "
                             "smaller one for a slow engine, against sets of the same size")
    args = parser.parse_args()
    rows = []
    for engines in args.sets:
        name = engines.replace(",", "-") + (f"-{args.clips}" if args.clips else "")
        data = args.out / f"engines-{name}"
        start = time.perf_counter()
        if not (data / "synth.json").is_file():
            size = ["--clips", str(args.clips)] if args.clips else []
            cli("data", "synth", "--out", str(data), "--test-clips", "0", *size,
                "--engines", *engines.split(","))
        teacher = Path("checkpoints") / f"teacher-engines-{name}.pt"
        if not teacher.is_file():
            cli("teacher", "--data", str(data), "--teacher", str(teacher))
        extra = ["--hours", str(args.hours)] if args.hours > 0 else []
        cross = json.loads(cli("evaluate", str(teacher), "--data", str(args.festival), "--json",
                               *extra, capture=True))
        own = json.loads(cli("evaluate", str(teacher), "--data", str(data), "--json",
                             capture=True))
        rows.append((engines, cross, own, time.perf_counter() - start))

    print("\n| engines | Festival: detected | false alarms | quality / p(1-p) | own test: "
          "quality / p(1-p) | ratio | FA per hour | missed at 0.5/h | minutes |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for engines, cross, own, seconds in rows:
        wake = cross.get("wakeword")
        print(f"| {engines} | {100 * (1 - cross['fr']):.1f}% | {100 * cross['fa']:.2f}% | "
              f"{cross['quality_norm']:.2e} | {own['quality_norm']:.2e} | "
              f"{cross['quality_norm'] / own['quality_norm']:.1f}x | "
              + (f"{wake['false_accepts_per_hour']:.1f} | "
                 f"{100 * wake['at_rate']['0.5']['false_reject_rate']:.1f}% | "
                 if wake else "- | - | ")
              + f"{seconds / 60:.1f} |")


if __name__ == "__main__":
    run_script(main)
