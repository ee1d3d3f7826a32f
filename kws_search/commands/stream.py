"""`kws-search stream MODEL AUDIO`: stream a wav through an exported model."""

from __future__ import annotations

import argparse
from pathlib import Path

from kws_search.commands.common import positive_float, probability

HELP = """examples:
  kws-search stream checkpoints/kws-trial12-stream.pt recording.wav
  kws-search stream model.pt long.wav --chunk 0.5 --threshold 0.8 --out reports/long.html
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("stream", help="stream a wav file through an exported model",
                            epilog=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="TorchScript file from `kws-search export`")
    parser.add_argument("audio", type=Path, help="wav file: any length, rate, mono or stereo")
    parser.add_argument("--chunk", type=positive_float, default=0.1, help="seconds per chunk")
    parser.add_argument("--threshold", type=probability, default=None,
                        help="detection threshold (default: the one stored in the model)")
    parser.add_argument("--out", type=Path, default=None,
                        help="plot file (default: reports/stream/<audio name>.html)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kws_search.data.datasets import read_wav
    from kws_search.deploy.playback import detections, plot_stream, stream_audio
    from kws_search.deploy.torchscript import load_exported

    module, _ = load_exported(args.model)
    audio = read_wav(args.audio, int(module.sample_rate))
    df = stream_audio(module, audio, args.chunk)
    threshold = float(module.threshold) if args.threshold is None else args.threshold
    found = detections(df, threshold)
    print(f"{args.audio}: {len(audio) / module.sample_rate:.2f} s, keyword "
          f"{module.keyword!r}, threshold {threshold:.3f}: {len(found)} detection(s)")
    for time_s, peak in found:
        print(f"  {time_s:8.2f} s  p={peak:.3f}")
    out = args.out or Path("reports") / "stream" / f"{args.audio.stem}.html"
    written = plot_stream(df, threshold, out, f"{module.keyword!r} in {args.audio.name}")
    print("plot: " + ", ".join(str(p) for p in written))
    return 0
