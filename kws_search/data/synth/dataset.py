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
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kws_search.data.datasets import NOISE_DIR, fit_length
from kws_search.data.synth.espeak import voice_variants
from kws_search.data.synth.noise import NOISE_KINDS, noise_recording, render_babble, write_noise
from kws_search.data.synth.plan import ACCENTS, SynthConfig, check_config, plan_clips
from kws_search.data.synth.render import CHUNK_CLIPS, render_chunk

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
    prepare_root(root, overwrite)
    start = time.perf_counter()
    ids, splits, clips = plan_clips(cfg)
    meta = {"config": asdict(cfg), "complete": False,
            "espeakng_loader": metadata.version("espeakng-loader")}
    (root / "synth.json").write_text(json.dumps(meta, indent=2) + "\n")
    for word in sorted({c.path.split("/")[0] for c in clips}):
        (root / word).mkdir()
    logger.info("synthesizing %d clips from %d speakers into %s with %d worker(s)",
                len(clips), len(ids), root, cfg.workers)

    noise_rng = np.random.default_rng([cfg.seed, 5])
    seconds = {k: float(noise_rng.integers(30, 61)) for k in NOISE_KINDS}
    variants = voice_variants()
    talkers = [(f"{ACCENTS[i % len(ACCENTS)]}+{variants[noise_rng.integers(1, len(variants))]}",
                int(noise_rng.uniform(140, 200)),
                int(noise_rng.uniform(20, 80)), int(noise_rng.uniform(20, 80)),
                int(noise_rng.integers(2**30))) for i in range(7)]
    tasks = [(str(root), clips[i:i + CHUNK_CLIPS], cfg.sample_rate, cfg.clip_seconds)
             for i in range(0, len(clips), CHUNK_CLIPS)]
    ctx = mp.get_context("spawn")  # each worker loads its own eSpeak; no state is inherited
    with ctx.Pool(min(cfg.workers, len(tasks))) as pool, \
            tqdm(total=len(clips), unit="clip", desc="synthesizing", disable=not progress) as bar:
        babble = pool.apply_async(render_babble, ((talkers, seconds["babble"],
                                                   cfg.sample_rate),))
        for done in pool.imap_unordered(render_chunk, tasks):
            bar.update(done)
        babble_audio = babble.get()

    (root / NOISE_DIR).mkdir()
    for kind in NOISE_KINDS:
        n = int(seconds[kind] * cfg.sample_rate)
        x = (fit_length(babble_audio, n) if kind == "babble"
             else noise_recording(kind, n, cfg.sample_rate, noise_rng))
        write_noise(root / NOISE_DIR / f"{kind}.wav", x, cfg.sample_rate)

    split_of_speaker = {ids[s]: name for name, members in splits.items() for s in members}
    split_of = {c.path: split_of_speaker[c.path.split("/")[1][:8]] for c in clips}
    for split, name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        lines = sorted(p for p, s in split_of.items() if s == split)
        (root / name).write_text("".join(f"{p}\n" for p in lines))

    words = sorted({c.path.split("/")[0] for c in clips})
    summary = {
        "clips": len(clips),
        "clips_per_word": {w: sum(c.path.startswith(f"{w}/") for c in clips) for w in words},
        "speakers": len(ids),
        "speakers_per_split": {s: len(v) for s, v in splits.items()},
        "clips_per_split": {s: sum(v == s for v in split_of.values()) for s in splits},
        "keyword_clips_per_split": {
            s: sum(v == s and p.startswith(f"{cfg.keyword}/") for p, v in split_of.items())
            for s in splits},
        "noise_files": [f"{NOISE_DIR}/{k}.wav" for k in NOISE_KINDS],
        "seconds": round(time.perf_counter() - start, 2),
    }
    meta.update(complete=True, summary=summary)
    (root / "synth.json").write_text(json.dumps(meta, indent=2) + "\n")
    logger.info("synthesized %d clips in %.1f s into %s", len(clips), summary["seconds"], root)
    return summary
