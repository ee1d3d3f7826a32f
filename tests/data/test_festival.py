"""The Festival cross-engine folder: layout, evaluation-only marker, determinism, install hint."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import soundfile as sf

from kws_search.data.datasets import DataError, scan_dataset
from kws_search.data.synth import CONFUSABLE_WORDS, SynthConfig
from kws_search.data.synth.festival import VOICES, FestivalConfig, plan_clips, synthesize_festival

needs_festival = pytest.mark.skipif(
    shutil.which("festival") is None and os.environ.get("CI") != "true",
    reason="Festival not installed (sudo apt-get install festival ...); CI installs it")
TINY = FestivalConfig(speakers_per_voice=1, clips_per_speaker=30)


@pytest.mark.slow
@needs_festival
def test_festival_folder_is_evaluation_only_and_repeats(tmp_path):
    summary = synthesize_festival(tmp_path / "a", TINY, progress=False)
    root = tmp_path / "a"
    assert summary["keyword_clips"] >= len(VOICES) and summary["speakers"] == len(VOICES)
    assert 30 * len(VOICES) <= summary["clips"] <= 31 * len(VOICES)
    wavs = sorted(p for p in root.glob("*/*.wav") if not p.parent.name.startswith("_"))
    assert len(wavs) == summary["clips"]
    audio, sr = sf.read(wavs[0])
    assert sr == 16_000 and audio.shape == (16_000,) and abs(audio).max() > 0.01
    assert not (root / "validation_list.txt").exists()
    assert json.loads((root / "synth.json").read_text())["evaluation_only"] is True
    assert len(list((root / "_background_noise_").glob("*.wav"))) == 7
    speech, sr = sf.read(root / "_speech_" / "festival.wav")  # for false accepts per hour
    assert sr == 16_000
    assert speech.shape[0] / sr == pytest.approx(summary["speech_seconds"], abs=0.1)
    assert summary["speech_seconds"] > 120
    with pytest.raises(DataError, match="evaluation-only"):
        scan_dataset(root, "sheila")
    synthesize_festival(tmp_path / "b", TINY, progress=False)
    for wav in wavs[:20]:
        assert wav.read_bytes() == (tmp_path / "b" / wav.relative_to(root)).read_bytes()


def test_missing_festival_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DataError, match=r"sudo apt-get install festival festvox-kallpc16k"):
        synthesize_festival(tmp_path / "out", TINY, progress=False)
    assert not (tmp_path / "out").exists()  # nothing written before the check


def test_words_come_in_the_training_sets_proportions():
    clips = plan_clips(FestivalConfig())
    words = [c.path.split("/")[0] for c in clips]
    share = words.count("sheila") / len(words)
    assert abs(share - SynthConfig.keyword_fraction) < 0.01
    confusable = sum(w in CONFUSABLE_WORDS for w in words) / (len(words) - words.count("sheila"))
    assert abs(confusable - SynthConfig.confusable_fraction) < 0.02
    assert len({c.path for c in clips}) == len(clips)  # no file written twice


@pytest.mark.slow
@needs_festival
def test_every_voice_varies_its_keyword_across_speakers(tmp_path):
    """Each speaker has its own pitch and rate in every voice, the HTS one included (it takes
    them through its engine's options, not Festival's diphone settings)."""
    cfg = FestivalConfig(speakers_per_voice=2, clips_per_speaker=2)
    synthesize_festival(tmp_path, cfg, progress=False)
    for voice in VOICES:
        said = [c.path for c in plan_clips(cfg) if c.voice == voice and c.text == "sheila"]
        first, second = (sf.read(tmp_path / path)[0] for path in said[:2])
        spoken = [abs(x) > 0.01 * abs(x).max() for x in (first, second)]
        lengths = [s.nonzero()[0][-1] - s.nonzero()[0][0] for s in spoken]
        assert abs(lengths[0] - lengths[1]) > 160, voice  # more than 10 ms apart
