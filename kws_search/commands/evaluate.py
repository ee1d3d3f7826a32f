"""`kws-search evaluate MODEL --data DIR`: score a model file on any Speech Commands folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kws_search.commands.common import DEFAULT_DATA, positive_float, probability
from kws_search.errors import ConfigError

HELP = """examples:
  kws-search evaluate checkpoints/teacher-synth.pt                  # test split of data/synth
  kws-search evaluate checkpoints/kws-trial12-stream.pt --data data/festival
  kws-search evaluate checkpoints/kws-trial12.pt --data ~/my_recordings --clean --json
  kws-search evaluate checkpoints/teacher-synth.pt --split validation --threshold 0.9
  kws-search evaluate checkpoints/teacher-synth.pt --hours 1     # + false accepts per hour
  kws-search evaluate checkpoints/kws-trial12-stream.pt --long-wav radio.wav
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "evaluate", help="score a teacher, student or exported model on a folder of clips",
        description="Quality (FA/FR area), FA and FR at the model's threshold, keywords "
                    "detected, false alarms per word and misses per speaker; and what a "
                    "threshold set on the folder itself (1% false alarms) would detect, which "
                    "is what calibrating on such recordings buys. A folder with "
                    "split lists is scored on its test split (or --split); one without lists "
                    "(or made for evaluation only) on every clip.",
        epilog=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path,
                        help="teacher or trial checkpoint, or a file from `kws-search export` "
                             "(TorchScript, or ONNX with the onnx extra)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder in Speech Commands layout (default: %(default)s)")
    parser.add_argument("--split", default=None, choices=("test", "validation", "train"),
                        help="split of a folder with lists (default: test)")
    parser.add_argument("--keyword", default=None,
                        help="keyword folder (default: the model's keyword)")
    parser.add_argument("--threshold", type=probability, default=None,
                        help="detection threshold in 0..1 (default: the one stored in the model)")
    parser.add_argument("--clean", action="store_true",
                        help="score clips as recorded (default: background noise of the folder "
                             "is mixed in as for the test split)")
    parser.add_argument("--hours", type=positive_float, default=None,
                        help="also stream this many hours without the keyword, built from the "
                             "folder (its other words, its running speech in _speech_/, its "
                             "noise), through the model: false accepts per hour, and the "
                             "keyword clips missed at 0.5 and 1 per hour")
    parser.add_argument("--long-wav", type=Path, default=None, metavar="WAV",
                        help="the same on your own recording without the keyword")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kws_search.evaluate import evaluate_file
    from kws_search.wakeword import describe

    if args.hours is not None and args.long_wav is not None:
        raise ConfigError("give --hours (a stream built from --data) or --long-wav, not both")
    result = evaluate_file(args.model, args.data, args.split, args.threshold,
                           noise=not args.clean, keyword=args.keyword, hours=args.hours,
                           long_wav=args.long_wav, progress=not args.json)
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return 0
    kw, n_kw = result["keyword"], result["keyword_clips"]
    n_other = result["clips"] - n_kw
    print(f"{result['model']} ({result['kind']}, {result['quant']}) on {result['described']}")
    print(f"  {result['clips']} clips, {n_kw} {kw!r}"
          + (f", {result['skipped']} unreadable skipped" if result["skipped"] else ""))
    print(f"  quality {result['quality']:.3e}  (/ p(1-p): {result['quality_norm']:.3e})")
    print(f"  threshold {result['threshold']:.3f}: detected {result['detected']}/{n_kw} "
          f"({100 * (1 - result['fr']):.1f}%), false alarms {result['false_alarms']}/{n_other} "
          f"({100 * result['fa']:.2f}%)")
    print(f"  threshold {result['own_threshold']:.3f} set on these clips "
          f"({100 * result['own_fa_rate']:.0f}% false alarms): detected "
          f"{result['own_detected']}/{n_kw} ({100 * result['own_detected'] / n_kw:.1f}%), "
          f"false alarms {result['own_false_alarms']}/{n_other}")
    if result["false_alarms_per_word"]:
        words = ", ".join(f"{w} {c}" for w, c in list(result["false_alarms_per_word"].items())[:10])
        print(f"  false alarms by word: {words}")
    if result["misses_per_speaker"]:
        misses = ", ".join(f"{s} {m}/{n}"
                           for s, (m, n) in list(result["misses_per_speaker"].items())[:10])
        more = len(result["misses_per_speaker"]) - 10
        print(f"  misses by speaker: {misses}" + (f" (+{more} more)" if more > 0 else ""))
    for engine, e in result["per_engine"].items():
        print(f"  {engine:8s} {e['clips']:6d} clips: quality {e['quality']:.3e} (/ p(1-p) "
              f"{e['quality_norm']:.3e}), detected {e['detected']}/{e['keyword_clips']}, false "
              f"alarms {e['false_alarms']}/{e['clips'] - e['keyword_clips']}")
    if "wakeword" in result:
        print("wake-word measures, streamed:")
        print("\n".join(describe(result["wakeword"])))
    return 0
