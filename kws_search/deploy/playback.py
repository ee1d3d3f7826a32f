"""Running an exported streaming model over audio: probabilities, detections, plots, demo track.

The model is the TorchScript file `export.export_checkpoint` writes; it is fed in chunks, as a
microphone would feed it, and reports one keyword probability per 10 ms hop.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kws_search.data.datasets import read_wav, scan_dataset
from kws_search.data.features import add_noise, noise_segment
from kws_search.deploy.torchscript import load_exported

logger = logging.getLogger(__name__)

DEMO_SAMPLE_RATE = 16_000


def stream_audio(model: torch.jit.ScriptModule, audio: np.ndarray | torch.Tensor,
                 chunk_seconds: float = 0.1) -> pd.DataFrame:
    """Stream mono audio [samples] (at the model's rate) through `model` from a fresh state.

    Returns one row per completed hop: time_s (end of the hop) and probability.
    """
    if chunk_seconds <= 0:
        raise ValueError(f"chunk_seconds must be > 0, got {chunk_seconds}")
    sample_rate, hop = int(model.sample_rate), int(model.hop_length)
    audio = torch.as_tensor(np.asarray(audio, dtype=np.float32))  # [samples]
    chunk = max(1, int(round(chunk_seconds * sample_rate)))
    model.reset()
    parts = []
    with torch.inference_mode():
        for start in range(0, audio.shape[0], chunk):
            parts.append(model.forward_steps(audio[start:start + chunk]))  # [hops in chunk]
    probs = torch.cat(parts).numpy() if parts else np.zeros(0, dtype=np.float32)
    times = np.arange(1, probs.shape[0] + 1) * hop / sample_rate
    return pd.DataFrame({"time_s": times, "probability": probs.astype(np.float64)})


def stream_file(model_path: Path, audio_path: Path, chunk_seconds: float = 0.1) -> pd.DataFrame:
    """Keyword probability per 10 ms hop of a wav file (any rate, stereo mixed down).

    Raises kws_search.data.datasets.DataError for unreadable or empty audio.
    """
    model, _ = load_exported(model_path)
    audio = read_wav(Path(audio_path), int(model.sample_rate))  # [samples]
    logger.info("streaming %s (%.1f s) through %s in %.3f s chunks", audio_path,
                audio.shape[0] / model.sample_rate, model_path, chunk_seconds)
    return stream_audio(model, audio, chunk_seconds)


def detections(df: pd.DataFrame, threshold: float,
               refractory_s: float = 1.0) -> list[tuple[float, float]]:
    """(time_s, peak probability within the refractory time) of each detection, by the rule
    false accepts per hour count with (`kws_search.wakeword.detection_hops`).

    A detection is placed where the probability first reaches the threshold, the moment a
    streaming detector fires (the peak can come up to a window later, while the keyword is
    still in the attention window); nothing fires within `refractory_s` of it, so one spoken
    keyword counts once.
    """
    from kws_search.wakeword import detection_hops

    times = df["time_s"].to_numpy()
    probs = df["probability"].to_numpy()
    hop_s = float(times[1] - times[0]) if len(times) > 1 else 0.01
    window = max(1, round(refractory_s / hop_s))
    return [(float(times[h]), float(probs[h:h + window].max()))
            for h in detection_hops(probs, threshold, round(refractory_s / hop_s))]


def plot_stream(df: pd.DataFrame, threshold: float, out_html: Path, title: str,
                marks: list[tuple[float, float]] | None = None) -> list[Path]:
    """Plot probability over time with the threshold; write HTML and, where kaleido works, PNG.

    `marks` are (start_s, end_s) spans where the keyword truly is, drawn shaded. Returns the
    files written (only the HTML when PNG export fails, which is logged).
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=df["time_s"], y=df["probability"], mode="lines",
                             name="keyword probability"))
    fig.add_hline(y=threshold, line_dash="dash", line_color="red",
                  annotation_text=f"threshold {threshold:.3g}")
    for start, end in marks or []:
        fig.add_vrect(x0=start, x1=end, fillcolor="green", opacity=0.2, line_width=0,
                      annotation_text="keyword", annotation_position="top left")
    fig.update_layout(title=title, xaxis_title="time, s", yaxis_title="probability",
                      yaxis_range=[0, 1.05], template="plotly_white")
    out_html = Path(out_html)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(out_html), include_plotlyjs=True)
    written = [out_html]
    png = out_html.with_suffix(".png")
    try:
        fig.write_image(str(png), width=1200, height=450)
        written.append(png)
    except Exception as exc:  # kaleido missing, or no Chrome for it to drive
        reason = " ".join(str(exc).split())[:300] or "no message"
        logger.warning("PNG export skipped (%s: %s); the HTML plot is at %s",
                       type(exc).__name__, reason, out_html)
    return written


def _background_track(clips: list[np.ndarray], seconds: float,
                      rng: np.random.Generator) -> np.ndarray:
    """Random clips separated by short pauses, cropped to `seconds`, over a noise bed."""
    length = int(seconds * DEMO_SAMPLE_RATE)
    parts, total = [], 0
    while total < length:
        clip = clips[rng.integers(len(clips))]
        pause = np.zeros(int(rng.uniform(0.0, 0.6) * DEMO_SAMPLE_RATE), dtype=np.float32)
        parts += [clip, pause]
        total += clip.shape[0] + pause.shape[0]
    return np.concatenate(parts)[:length]


def _noise_bed(noise: list[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """A random stretch of one background recording, tiled when too short -> [length]."""
    return noise_segment(noise[rng.integers(len(noise))], length, rng.random())


def demo_track(dataset_root: Path, keyword: str, seed: int) -> tuple[np.ndarray, float, float]:
    """The task's demo: a 10-20 s track, one test keyword clip, another 10-20 s track.

    Both tracks are random non-keyword test clips with pauses; a background recording from
    `_background_noise_` (if any) is mixed under everything at 10-20 dB SNR. Returns audio
    [samples] at 16 kHz and the keyword clip's start and end in seconds.
    """
    rng = np.random.default_rng(seed)
    index = scan_dataset(dataset_root, keyword)
    test = index.splits["test"]
    others = [rel for rel, label in test if label == 0]
    keywords = [rel for rel, label in test if label == 1]
    picked = [others[i] for i in rng.choice(len(others), size=min(len(others), 80),
                                            replace=False)]
    clips = [read_wav(index.root / rel, DEMO_SAMPLE_RATE) for rel in picked]
    half = max(1, len(clips) // 2)  # the two tracks draw from different clips
    first = _background_track(clips[:half], rng.uniform(10.0, 20.0), rng)
    kw_rel = keywords[rng.integers(len(keywords))]
    kw = read_wav(index.root / kw_rel, DEMO_SAMPLE_RATE)
    second = _background_track(clips[half:] or clips, rng.uniform(10.0, 20.0), rng)
    audio = np.concatenate([first, kw, second]).astype(np.float32)  # [samples]
    if index.noise_files:
        noise = [read_wav(index.root / rel, DEMO_SAMPLE_RATE) for rel in index.noise_files]
        bed = _noise_bed(noise, audio.shape[0], rng)
        audio = add_noise(audio, bed, rng.uniform(10.0, 20.0))
    else:
        logger.warning("no background noise in %s; the demo track has none", dataset_root)
    peak = float(np.abs(audio).max())
    if peak > 0.99:
        audio = audio * np.float32(0.99 / peak)
    start = first.shape[0] / DEMO_SAMPLE_RATE
    logger.info("demo track %.1f s, keyword clip %s at %.2f-%.2f s", audio.shape[0] /
                DEMO_SAMPLE_RATE, kw_rel, start, start + kw.shape[0] / DEMO_SAMPLE_RATE)
    return audio.astype(np.float32), start, start + kw.shape[0] / DEMO_SAMPLE_RATE
