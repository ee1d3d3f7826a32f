"""`kws-search demo MODEL`: the task's streaming demo on the dataset's own material."""

from __future__ import annotations

import argparse
from pathlib import Path

from kws_search.commands.common import DEFAULT_DATA

HELP = """examples:
  kws-search demo checkpoints/kws-trial12-stream.pt
  kws-search demo checkpoints/teacher-synth-stream.pt --seed 3 --out reports/demo-teacher
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="two tracks glued with the keyword between them, "
                            "streamed through an exported model", epilog=HELP,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="TorchScript file from `kws-search export`")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="dataset whose test clips and noise build the track")
    parser.add_argument("--seed", type=int, default=0,
                        help="which clips and noise the demo draws (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("reports/demo"), help="folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import soundfile as sf

    from kws_search.deploy.playback import demo_track, detections, plot_stream, stream_audio
    from kws_search.deploy.torchscript import load_exported

    module, _ = load_exported(args.model)
    audio, start, end = demo_track(args.data, str(module.keyword), args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    wav = args.out / "demo.wav"
    sf.write(wav, audio, int(module.sample_rate))
    df = stream_audio(module, audio)
    threshold = float(module.threshold)
    peak = df.loc[df.probability.idxmax()]
    found = detections(df, threshold)
    print(f"demo track {wav}: {len(audio) / module.sample_rate:.1f} s, keyword "
          f"{module.keyword!r} at {start:.2f}-{end:.2f} s")
    print(f"peak probability {peak.probability:.3f} at {peak.time_s:.2f} s; "
          f"{len(found)} detection(s) above {threshold:.3f}: "
          + ", ".join(f"{t:.2f} s" for t, _ in found))
    written = plot_stream(df, threshold, args.out / "demo.html",
                          f"{module.keyword!r} streamed over the demo track",
                          marks=[(start, end)])
    print("plot: " + ", ".join(str(p) for p in written))
    return 0
