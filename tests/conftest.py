"""Tiny data made on the spot: a Speech Commands style folder of tone 'words', and its features.

The keyword is a rising chirp and the other words are steady or falling tones, so a model with
a handful of units learns them in one or two epochs. Tests take everything here as fixtures
(`make_dataset`, `tiny_settings` and `student_checkpoint` are factories), never by importing
this module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws_search.data.features import prepare_features
from kws_search.data.front_end import FeatureConfig

SR = 16_000
WORDS = {"sheila": (300.0, 1500.0), "yes": (800.0, 800.0), "no": (1200.0, 400.0),
         "she": (300.0, 900.0), "up": (2000.0, 2000.0)}
TINY_FEATURES = FeatureConfig(train_variants=2, snr_low=5.0, snr_high=20.0)


def tone_word(f0: float, f1: float, rng: np.random.Generator, length: int = SR) -> np.ndarray:
    """A 0.4-0.6 s chirp from f0 to f1 Hz at a random place in a 1 s clip."""
    dur = int(rng.uniform(0.4, 0.6) * SR)
    freq = np.linspace(f0, f1, dur) * rng.uniform(0.9, 1.1)
    wave = np.sin(2 * np.pi * np.cumsum(freq) / SR) * np.hanning(dur) * rng.uniform(0.2, 0.8)
    out = np.zeros(length, dtype=np.float32)
    start = rng.integers(0, length - dur)
    out[start:start + dur] = wave
    return out


def write_dataset(root: Path, speakers: int = 12, seed: int = 0, sample_rate: int = SR) -> Path:
    """Write a tiny Speech Commands layout: 5 words x `speakers`, 2 held-out speakers per list."""
    rng = np.random.default_rng(seed)
    ids = [f"{rng.integers(0, 2**32):08x}" for _ in range(speakers)]
    val, test = [], []
    for word, (f0, f1) in WORDS.items():
        (root / word).mkdir(parents=True, exist_ok=True)
        for k, spk in enumerate(ids):
            for n in range(2):
                rel = f"{word}/{spk}_nohash_{n}.wav"
                audio = tone_word(f0, f1, rng, sample_rate)
                sf.write(root / rel, audio, sample_rate, subtype="PCM_16")
                (val if k < 2 else test if k < 4 else []).append(rel)
    (root / "validation_list.txt").write_text("\n".join(sorted(val)) + "\n")
    (root / "testing_list.txt").write_text("\n".join(sorted(test)) + "\n")
    noise = root / "_background_noise_"
    noise.mkdir()
    sf.write(noise / "white_noise.wav", rng.normal(0, 0.1, 5 * SR).astype(np.float32), SR)
    return root


@pytest.fixture(scope="session")
def make_dataset():
    """`make_dataset(root, speakers=12, seed=0, sample_rate=16000)` writes a tiny dataset."""
    return write_dataset


@pytest.fixture(scope="session")
def tiny_feature_config() -> FeatureConfig:
    """The feature settings of `tiny_features` (fewer train copies, milder noise)."""
    return TINY_FEATURES


@pytest.fixture(scope="session")
def tiny_settings():
    """`tiny_settings(data, teacher, folder, **overrides)`: RunSettings of a tiny study."""
    return settings_for


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(scope="session")
def tiny_features(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("cache")
    return prepare_features(tiny_data, "sheila", TINY_FEATURES, cache, progress=False)


@pytest.fixture(scope="session")
def tiny_teacher(tiny_features, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A teacher checkpoint trained for two epochs on the tiny data."""
    from kws_search.models import CRNNConfig
    from kws_search.teacher import train_teacher
    from kws_search.train import TrainConfig

    path = tmp_path_factory.mktemp("ckpt") / "teacher.pt"
    train_teacher(tiny_features, path, CRNNConfig(cnn_channels=4, hidden=16),
                  TrainConfig(epochs=2, lr=5e-3, batch_size=32), progress=False,
                  members=1)
    return path


def settings_for(tiny_data: Path, teacher: Path, folder: Path, **overrides):
    """RunSettings for a study of the tiny space in `folder` (SQLite + artifacts there);
    `overrides` name fields of any settings group (`trials=2`, `speed="latency"`)."""
    from kws_search.search.settings import DataSettings, RunSettings, StudySettings

    settings = RunSettings(
        DataSettings(tiny_data, "sheila", teacher, features=TINY_FEATURES,
                     cache_dir=folder / "cache"),
        StudySettings("tiny", f"sqlite:///{folder / 'tiny.db'}", space="tiny", trials=3,
                      artifact_dir=folder / "artifacts", finalists=0))  # tests of finalists ask
    return with_settings(settings, **overrides)


def with_settings(settings, **changes):
    """`settings` with fields of its groups changed, by field name."""
    from dataclasses import fields, replace

    groups = {"data": settings.data, "study": settings.study, "workers": settings.workers,
              "measures": settings.study.measures}
    changed = {name: {} for name in groups}
    for key, value in changes.items():
        owner = [name for name, group in groups.items()
                 if key in {f.name for f in fields(group)}]
        assert len(owner) == 1, f"no single settings group has a field {key!r}"
        changed[owner[0]][key] = value
    study = replace(settings.study, **changed["study"])
    study = replace(study, measures=replace(study.measures, **changed["measures"]))
    return replace(settings, data=replace(settings.data, **changed["data"]), study=study,
                   workers=replace(settings.workers, **changed["workers"]))


SLOW_FIXTURES: set[str] = set()  # filled by `study_fixture`


def study_fixture(function):
    """A session fixture that runs a study: every test that uses it, directly or through
    another fixture, is marked `slow` (`pytest -m "not slow"` is the quick loop)."""
    SLOW_FIXTURES.add(function.__name__)
    return pytest.fixture(scope="session")(function)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:  # `fixturenames` holds the fixtures a test uses through others too
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@study_fixture
def tiny_study(tiny_data: Path, tiny_teacher: Path, tmp_path_factory: pytest.TempPathFactory):
    """A finished 3-trial study of the tiny space; returns (settings, study)."""
    from kws_search.search.workers import run_search

    settings = settings_for(tiny_data, tiny_teacher, tmp_path_factory.mktemp("study"))
    return settings, run_search(settings, progress=False)


@pytest.fixture(scope="session")
def cli_inputs(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """(data, teacher, cache) for the CLI, whose feature settings are the defaults."""
    from kws_search.models import CRNNConfig
    from kws_search.teacher import train_teacher
    from kws_search.train import TrainConfig

    folder = tmp_path_factory.mktemp("cli")
    features = prepare_features(tiny_data, "sheila", FeatureConfig(), folder / "cache",
                                progress=False)
    train_teacher(features, folder / "teacher.pt", CRNNConfig(cnn_channels=4, hidden=16),
                  TrainConfig(epochs=2, lr=5e-3, batch_size=32), progress=False,
                  members=1)
    return tiny_data, folder / "teacher.pt", folder / "cache"


@study_fixture
def cli_study(cli_inputs, tmp_path_factory: pytest.TempPathFactory):
    """A 2-trial study of the tiny space made by `kws-search run` (default feature config);
    returns (folder, db) to copy from."""
    from kws_search.cli import main

    data, teacher, cache = cli_inputs
    db = tmp_path_factory.mktemp("cli-study") / "made.db"
    assert main(["run", "--data", str(data), "--teacher", str(teacher), "--cache", str(cache),
                 "--storage", f"sqlite:///{db}", "--study", "tiny", "--trials", "2",
                 "--finalists", "0", "--no-cross-data", "--space", "tiny", "--jobs", "1"]) == 0
    return cache.parent, db


@pytest.fixture(scope="module")
def tiny_report(tiny_study, tmp_path_factory: pytest.TempPathFactory):
    """The report of `tiny_study`, written once (no PNGs)."""
    from kws_search.report.pages import write_report

    settings, _ = tiny_study
    return write_report(settings.study.name, settings.study.storage,
                        tmp_path_factory.mktemp("report") / "out", png=False)


@pytest.fixture()
def workdir(tmp_path, monkeypatch, tiny_data):
    """A fresh current folder: the CLI writes studies/ and checkpoints/ here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def random_student(config, mode: str = "none", seed: int = 0, frames: int = 98):
    """A random CRNN of `config`, calibrated for `mode` on random log-mel: what a trial's
    checkpoint holds (for `qat`, its fake-quant observers saw the same data)."""
    import torch

    from kws_search.models import CRNN
    from kws_search.quantize import calibrate, prepare_for_training

    torch.manual_seed(seed)
    model = prepare_for_training(CRNN(config), mode)
    calibration = torch.randn(8, config.n_mels, frames) * 3 - 5
    if mode == "qat":
        model.train()
        model(calibration)
    model.eval()
    return calibrate(model, mode, calibration)


def save_random_student(path: Path, config, mode: str = "none",
                        features: FeatureConfig = FeatureConfig(), seed: int = 0,
                        metrics: dict | None = None) -> Path:
    from kws_search.checkpoint import save_checkpoint

    model = random_student(config, mode, seed, features.frames)
    return save_checkpoint(path, model, kind="student", model_config=config,
                           feature_config=features, keyword="sheila", dataset_fingerprint="f",
                           quant=mode, metrics=metrics or {"quality": 1e-3, "threshold": 0.42})


@pytest.fixture(scope="session")
def student_checkpoint():
    """`student_checkpoint(path, config, mode="none", features=FeatureConfig(), seed=0,
    metrics=None)`: a random student saved as a trial saves it; returns the path."""
    return save_random_student


@pytest.fixture(scope="session")
def calibrated_student():
    """`calibrated_student(config, mode="none", seed=0, frames=98)`: the random student of
    `student_checkpoint`, in its calibrated float form."""
    return random_student
