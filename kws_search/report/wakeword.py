"""The wake-word measures of a study's teacher and finalists, for `report` and `answer.json`.

One long stream without the keyword is built from the study's dataset (its test split's other
words, its running speech, its noise; `kws_search.wakeword.build_stream`) and streamed through
the teacher and every finalist, each as its exported file would run it; the keyword clips that
the miss rates are read on are the test split's (up to `KEYWORD_CLIPS` of them, the same for
every model). Results are kept in `wakeword.json` in the report folder, keyed by the models'
checkpoint bytes, so a report written again streams only what changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from kws_search.data.datasets import NOISE_DIR, read_wav
from kws_search.report.tables import aligned
from kws_search.search.fidelity import is_final
from kws_search.search.select import fetch_checkpoint

logger = logging.getLogger(__name__)

KEYWORD_CLIPS = 2000  # the miss rate to about +-1%
CACHE = "wakeword.json"


def _digest(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes(), digest_size=12).hexdigest()


def keyword_audio(root: Path, keyword: str, sample_rate: int) -> np.ndarray:
    """Up to KEYWORD_CLIPS keyword clips of the test split [clips, samples], evenly spread."""
    listed = sorted(rel for rel in (root / "testing_list.txt").read_text().split()
                    if rel.startswith(f"{keyword}/"))
    step = max(1, len(listed) // KEYWORD_CLIPS)
    return np.stack([read_wav(root / rel, sample_rate) for rel in listed[::step][:KEYWORD_CLIPS]])


def study_wakeword(study: optuna.Study, folder: Path, hours: float,
                   progress: bool = False) -> dict[str, Any]:
    """{"stream": ..., "models": {"teacher" | "trial N": measures}}; {} when the study has no
    finalists yet or its dataset is not here (the reason is logged)."""
    from kws_search import wakeword
    from kws_search.evaluate import load_scorer

    attrs = study.user_attrs
    root, keyword = Path(attrs.get("data", "")), attrs.get("keyword", "")
    finals = [t for t in study.get_trials(deepcopy=False)
              if is_final(t) and t.state == optuna.trial.TrialState.COMPLETE]
    if not finals or not (root / "testing_list.txt").is_file():
        logger.info("no wake-word measures: %s", "no finalists yet" if not finals
                    else f"dataset {root} with a test list is not here")
        return {}
    cache_path = folder / CACHE
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    if cache.get("hours") != hours:
        cache = {"hours": hours, "models": {}}
    models = {"teacher": Path(attrs["teacher_path"])}
    for t in finals:
        models[f"trial {t.number}"] = fetch_checkpoint(
            study, t, folder / "checkpoints" / f"trial{t.number}.pt")
    todo = {name: path for name, path in models.items()
            if cache["models"].get(name, {}).get("digest") != _digest(path)}
    if todo:
        scorer = load_scorer(models["teacher"])
        rate = scorer.feature_config.sample_rate
        negatives = [rel for rel in (root / "testing_list.txt").read_text().split()
                     if not rel.startswith(f"{keyword}/")]
        noise = tuple(sorted(f"{NOISE_DIR}/{p.name}" for p in (root / NOISE_DIR).glob("*.wav")))
        stream = wakeword.build_stream(root, negatives, noise, hours, rate)
        clips = keyword_audio(root, keyword, rate)
        cache["stream"] = stream.content
        for name, path in todo.items():
            logger.info("streaming %.1f h through %s", hours, name)
            model_scorer = load_scorer(path)
            result = wakeword.wakeword_measures(
                wakeword.load_stream_model(path), stream, model_scorer.probabilities(clips),
                model_scorer.threshold, progress)
            cache["models"][name] = {**result, "digest": _digest(path)}
        cache_path.write_text(json.dumps(cache, indent=2) + "\n")
    return {"stream": cache["stream"], "hours": hours,
            "models": {name: {k: v for k, v in cache["models"][name].items()
                              if k not in ("digest", "stream")} for name in models}}


def wakeword_lines(result: dict[str, Any]) -> list[str]:
    """The measures as a small table: false accepts per hour at each model's threshold, and
    the keyword clips missed there and at 0.5 and 1 per hour."""
    if not result:
        return []
    rows = [("model", "threshold", "false accepts / h", "missed", "missed at 0.5/h",
             "missed at 1/h")]
    for name, m in result["models"].items():
        rows.append((name, f"{m['threshold']:.3f}", f"{m['false_accepts_per_hour']:.1f}",
                     f"{m['false_reject_rate']:.1%}",
                     f"{m['at_rate']['0.5']['false_reject_rate']:.1%}",
                     f"{m['at_rate']['1']['false_reject_rate']:.1%}"))
    return [f"wake-word measures on {result['stream']}; keyword clips of the test split",
            *aligned(rows)]
