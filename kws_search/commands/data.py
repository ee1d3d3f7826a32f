"""`kws-search data synth|info`: make the default dataset, or check a dataset folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from kws_search.commands.common import DEFAULT_DATA, positive_int

HELP = """examples:
  kws-search data synth                          # 20,000 clips under data/synth
  kws-search data synth --clips 2000 --out data/small --seed 1
  kws-search data info --data ~/speech_commands_v0.01 --keyword sheila
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="make or check a dataset", epilog=HELP,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    synth = actions.add_parser("synth", help="synthesize the default dataset with eSpeak NG",
                               epilog=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    synth.add_argument("--out", type=Path, default=DEFAULT_DATA,
                       help="folder (default: %(default)s)")
    synth.add_argument("--clips", type=positive_int, default=20_000, help="total clips")
    synth.add_argument("--keyword", default="sheila")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--workers", type=positive_int, default=2)
    synth.add_argument("--force", action="store_true",
                       help="replace an earlier synthesized dataset in --out")
    synth.set_defaults(func=run_synth)
    info = actions.add_parser("info", help="check a dataset folder and count its clips",
                              epilog=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    info.add_argument("--data", type=Path, default=DEFAULT_DATA)
    info.add_argument("--keyword", default="sheila")
    info.set_defaults(func=run_info)


def run_synth(args: argparse.Namespace) -> int:
    from kws_search.synth import SynthConfig, synthesize

    config = SynthConfig(keyword=args.keyword, n_clips=args.clips, seed=args.seed,
                         workers=args.workers)
    summary = synthesize(args.out, config, progress=True, overwrite=args.force)
    seconds = summary.get("seconds", float("nan"))
    print(f"wrote {args.clips} clips to {args.out} in {seconds:.1f} s")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from kws_search.data import scan_dataset

    index = scan_dataset(args.data, args.keyword)
    print(f"{index.root}: {len(index.words)} words, {len(index.noise_files)} noise files, "
          f"fingerprint {index.fingerprint[:12]}")
    for split, counts in index.counts().items():
        print(f"  {split:10s} {counts['keyword']:6d} {args.keyword!r}  {counts['other']:6d} other")
    return 0
