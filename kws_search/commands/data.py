"""`kws-search data synth|info`: make the default dataset, or check a dataset folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from kws_search.commands.common import (
    DEFAULT_DATA,
    DEFAULT_FESTIVAL,
    non_negative_int,
    positive_int,
)
from kws_search.errors import ConfigError

DEFAULT_CLIPS = 24_000

HELP = """examples:
  kws-search data synth                          # 24,000 clips under data/synth
  kws-search data synth --clips 2000 --out data/small --seed 1
  kws-search data synth --engine festival        # evaluation-only folder data/festival
  kws-search data info --data ~/speech_commands_v0.01 --keyword sheila
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="make or check a dataset", epilog=HELP,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    synth = actions.add_parser("synth", help="synthesize the default dataset (eSpeak NG, "
                               "SVOX Pico, hibari)",
                               epilog=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    synth.add_argument("--engine", choices=("default", "festival"), default="default",
                       help="default: the training dataset, from --engines; festival: an "
                            "evaluation-only folder of voices nobody trains on, for "
                            "`evaluate` and `run --cross-data` (needs Debian's festival)")
    synth.add_argument("--out", type=Path, default=None,
                       help=f"folder (default: {DEFAULT_DATA}, or {DEFAULT_FESTIVAL} for "
                            "--engine festival)")
    synth.add_argument("--clips", type=positive_int, default=None,
                       help=f"total clips of the training dataset (default: {DEFAULT_CLIPS})")
    synth.add_argument("--test-clips", type=non_negative_int, default=None, metavar="N",
                       help="clips of the answer split's own speakers, added to the test split "
                            "(default: 5/3 x --clips, 40,000 for the default dataset)")
    synth.add_argument("--engines", nargs="+", default=None, metavar="NAME",
                       help="the speech engines of the training dataset, each given "
                            "its share of the speakers (default: espeak pico hibari; kokoro, "
                            "the slow neural one, on request; one not installed is skipped "
                            "with a line saying how to add it)")
    synth.add_argument("--speech-fraction", type=float, default=0.0, metavar="F",
                       help="share of the other clips cut from running speech (a `speech` "
                            "word folder of negatives; default: %(default)s)")
    synth.add_argument("--speakers", type=positive_int, default=40,
                       help="festival: speakers per Festival voice (default: %(default)s)")
    synth.add_argument("--keyword", default="sheila",
                       help="the keyword the folder is made for (default: %(default)s)")
    synth.add_argument("--seed", type=int, default=0,
                       help="seed of every random choice; the same seed gives the same files")
    synth.add_argument("--workers", type=positive_int, default=2,
                       help="processes that render clips (default: %(default)s)")
    synth.add_argument("--force", action="store_true",
                       help="replace an earlier synthesized dataset in --out")
    synth.set_defaults(func=run_synth)
    info = actions.add_parser("info", help="check a dataset folder and count its clips",
                              epilog=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    info.add_argument("--data", type=Path, default=DEFAULT_DATA,
                      help="dataset folder (default: %(default)s)")
    info.add_argument("--keyword", default="sheila", help="keyword (default: %(default)s)")
    info.set_defaults(func=run_info)


def run_synth(args: argparse.Namespace) -> int:
    if args.engine == "festival":
        return _run_festival(args)
    from kws_search.data.synth import SynthConfig, synthesize

    out = args.out or DEFAULT_DATA
    config = SynthConfig(keyword=args.keyword, n_clips=args.clips or DEFAULT_CLIPS,
                         seed=args.seed, workers=args.workers, test_clips=args.test_clips,
                         speech_fraction=args.speech_fraction,
                         **({"engines": tuple(args.engines)} if args.engines else {}))
    summary = synthesize(out, config, progress=True, overwrite=args.force)
    print(f"wrote {summary['clips']} clips to {out} in {summary['seconds']:.1f} s")
    for split, n in summary["clips_per_split"].items():
        print(f"  {split:10s} {n:6d} clips, {summary['keyword_clips_per_split'][split]:5d} "
              f"{args.keyword!r}")
    for engine, made in summary["engines"].items():
        print(f"  {engine:7s} {made['clips']:6d} clips ({made['keyword_clips']} "
              f"{args.keyword!r}), {made['speakers']} speakers, voices "
              f"{', '.join(made['voices'][:4])}{' ...' if len(made['voices']) > 4 else ''}; "
              f"{made['seconds']:.0f} s of rendering")
    return 0


def _run_festival(args: argparse.Namespace) -> int:
    from kws_search.data.synth.festival import FestivalConfig, synthesize_festival

    if args.engines is not None:
        raise ConfigError("--engines is for the training dataset; Festival's folder has its "
                          "own voices")
    if args.clips is not None:
        raise ConfigError("--clips is for the training dataset; use --speakers with --engine "
                          "festival")
    out = args.out or DEFAULT_FESTIVAL
    config = FestivalConfig(keyword=args.keyword, speakers_per_voice=args.speakers,
                            seed=args.seed, workers=args.workers)
    summary = synthesize_festival(out, config, progress=True, overwrite=args.force)
    print(f"wrote {summary['clips']} clips ({summary['keyword_clips']} {args.keyword!r}, "
          f"{summary['speakers']} speakers) to {out} in {summary['seconds']:.1f} s; "
          "evaluation only: `kws-search evaluate MODEL --data "
          f"{out}` or `kws-search run --cross-data {out}`")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from collections import Counter

    from kws_search.data.datasets import engine_of_speaker, scan_dataset

    index = scan_dataset(args.data, args.keyword)
    print(f"{index.root}: {len(index.words)} words, {len(index.noise_files)} noise files, "
          f"fingerprint {index.fingerprint[:12]}")
    for split, counts in index.counts().items():
        print(f"  {split:10s} {counts['keyword']:6d} {args.keyword!r}  {counts['other']:6d} other")
    engine_of = engine_of_speaker(index.root)
    if engine_of:
        per = Counter((engine_of.get(rel.split("/")[1].split("_nohash_")[0], "?"), split)
                      for split, items in index.splits.items() for rel, _ in items)
        for engine in sorted({e for e, _ in per}):
            counts = ", ".join(f"{split} {per[engine, split]}" for split in index.splits)
            print(f"  {engine:10s} {counts}")
    return 0
