"""Bad input, tried for real through `kws_search.cli.main`: a one-line error naming the thing,
a non-zero exit, and nothing lost. Inputs that should just work (8 kHz, stereo, a few corrupt
files among many) are checked to work."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import optuna
import pytest
import soundfile as sf
from optuna.trial import TrialState

from kws_search.cli import main
from kws_search.data.features import prepare_features
from kws_search.search.storage import open_storage


def error_line(capsys: pytest.CaptureFixture) -> str:
    """The single `error: ...` line the CLI printed (progress bars may share stderr)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    found = re.findall(r"error: [^\r\n]*", err)
    assert len(found) == 1, err
    return found[0]


def damaged(tiny_data: Path, folder: Path) -> Path:
    """A copy of the tiny dataset to damage."""
    return Path(shutil.copytree(tiny_data, folder / "data"))


def teacher_args(data: Path, folder: Path) -> list[str]:
    """`kws-search teacher` reads every clip; 1 epoch of a 4-unit model keeps it short."""
    return ["teacher", "--data", str(data), "--epochs", "1", "--hidden", "4",
            "--cache", str(folder / "cache"), "--checkpoints", str(folder / "ckpt")]


def train_clip(data: Path, word: str) -> Path:
    """A clip of `word` in the train split (named in neither list)."""
    held_out = set((data / "validation_list.txt").read_text().split())
    held_out |= set((data / "testing_list.txt").read_text().split())
    return next(p for p in sorted((data / word).glob("*.wav"))
                if f"{word}/{p.name}" not in held_out)


# --- datasets -----------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["random bytes", "zero samples", "header only",
                                    "nan samples"])
def test_an_unreadable_clip_in_a_small_dataset_is_an_error_naming_it(damage, tiny_data,
                                                                    tmp_path, capsys):
    data = damaged(tiny_data, tmp_path)
    clip = train_clip(data, "yes")
    if damage == "random bytes":
        clip.write_bytes(os.urandom(3000))
    elif damage == "zero samples":
        sf.write(clip, np.zeros(0, dtype=np.float32), 16_000)
    elif damage == "header only":
        clip.write_bytes(clip.read_bytes()[:44])
    else:
        sf.write(clip, np.full(16_000, np.nan, dtype=np.float32), 16_000, subtype="FLOAT")
    assert main(teacher_args(data, tmp_path)) == 1
    message = error_line(capsys)
    assert f"yes/{clip.name}" in message and "unreadable" in message
    assert not (tmp_path / "ckpt").exists()


def test_a_few_corrupt_clips_among_many_are_skipped_and_counted(tmp_path, capsys, caplog,
                                                                make_dataset):
    data = make_dataset(tmp_path / "big", speakers=16)  # 120 train clips: 1 bad is < 1 %
    clip = train_clip(data, "up")
    clip.write_bytes(os.urandom(3000))
    assert main(teacher_args(data, tmp_path)) == 0
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 1 and "skipped 1 unreadable" in skipped[0] and clip.name in skipped[0]
    assert "teacher saved" in capsys.readouterr().out


@pytest.mark.parametrize("change", ["8 kHz", "stereo"])
def test_8khz_and_stereo_clips_are_resampled_and_mixed_down(change, tiny_data, tmp_path,
                                                           capsys):
    data = damaged(tiny_data, tmp_path)
    for path in data.glob("**/*.wav"):
        audio, rate = sf.read(path, dtype="float32")
        if change == "8 kHz":
            sf.write(path, audio[::2], rate // 2)
        else:
            sf.write(path, np.stack([audio, 0.5 * audio], axis=1), rate)
    assert main(teacher_args(data, tmp_path)) == 0
    assert "teacher saved" in capsys.readouterr().out


def test_a_listed_clip_that_is_missing_is_an_error_naming_it(tiny_data, tmp_path, capsys):
    data = damaged(tiny_data, tmp_path)
    listed = (data / "validation_list.txt").read_text().split()[0]
    (data / listed).unlink()
    assert main(teacher_args(data, tmp_path)) == 1
    assert listed in error_line(capsys)


def test_an_empty_keyword_folder_is_an_error(tiny_data, tmp_path, capsys):
    data = damaged(tiny_data, tmp_path)
    for clip in (data / "sheila").glob("*.wav"):
        clip.unlink()
    assert main(teacher_args(data, tmp_path)) == 1
    assert "no 'sheila' clips" in error_line(capsys)


def test_keyword_clips_in_another_format_say_only_wav_is_read(tiny_data, tmp_path, capsys):
    data = damaged(tiny_data, tmp_path)
    for clip in (data / "sheila").glob("*.wav"):
        clip.rename(clip.with_suffix(".flac"))
    assert main(teacher_args(data, tmp_path)) == 1
    assert "holds .flac files and no .wav; kws-search reads 16 kHz .wav clips only" in \
        error_line(capsys)


@pytest.mark.parametrize("layout", ["loose wavs", "missing folder"])
def test_a_folder_that_is_not_speech_commands_layout_is_an_error(layout, tmp_path, capsys):
    data = tmp_path / "loose"
    if layout == "loose wavs":
        data.mkdir()
        sf.write(data / "clip.wav", np.zeros(16_000, dtype=np.float32), 16_000)
    assert main(teacher_args(data, tmp_path)) == 1
    message = error_line(capsys)
    assert str(data) in message
    assert ("not a Speech Commands folder" if layout == "loose wavs" else "does not exist") \
        in message


# --- search options, against an existing study that must stay intact ---------------------

@pytest.fixture
def kept(tiny_study, tmp_path):
    """A copy of the finished tiny study; returns (storage URL, snapshot of its trials)."""
    settings, _ = tiny_study
    db = tmp_path / "kept.db"
    shutil.copy(settings.study.storage[len("sqlite:///"):], db)
    url = f"sqlite:///{db}"
    return url, snapshot(url)


def snapshot(url: str) -> list[tuple]:
    study = optuna.load_study(study_name="tiny", storage=open_storage(url, heartbeat=False))
    return [(t.number, t.state, t.values, t.params, t.user_attrs) for t in study.get_trials()]


def run_args(url: str, tiny_data: Path, tiny_teacher: Path, folder: Path, *extra: str):
    return ["run", "--data", str(tiny_data), "--teacher", str(tiny_teacher), "--cache",
            str(folder / "cache"), "--storage", url, "--study", "tiny", "--trials", "5",
            "--finalists", "0",
            *([] if "--cross-data" in extra else ["--no-cross-data"]), *extra]


SPACES = {  # name: (file text, what the message must name)
    "bad yaml": ("model: {hidden: [4, 8\n", "not valid YAML"),
    "a section twice": ("model:\n  hidden: 4\nmodel:\n  layers: 1\n",
                        "'model' is written twice (line 3)"),
    "no epochs": ("train:\n  epochs: 0\n", "epochs and batch_size must be >= 1"),
    "negative lr": ("train:\n  lr: {type: float, low: -1.0e-3, high: 1.0e-2}\n", "lr"),
    "zero batch": ("train:\n  batch_size: 0\n", "batch_size=0"),
    "unknown key": ("model:\n  channels: 4\n", "model.channels"),
    "low > high": ("model:\n  hidden: {type: int, low: 8, high: 4}\n", "model.hidden"),
    "wrong type in a range": ("model:\n  hidden: {type: int, low: a, high: 4}\n", "model.hidden"),
    "wrong type": ("model:\n  hidden: eight\n", "model.hidden"),
    "empty file": ("", "empty"),
}


@pytest.mark.parametrize("case", list(SPACES))
def test_a_malformed_search_space_is_an_error_naming_file_and_key(case, kept, tiny_data,
                                                                  tiny_teacher, tmp_path, capsys):
    url, before = kept
    text, named = SPACES[case]
    space = tmp_path / "space.yaml"
    space.write_text(text)
    assert main(run_args(url, tiny_data, tiny_teacher, tmp_path, "--space", str(space))) == 1
    message = error_line(capsys)
    assert str(space) in message and named in message, message
    assert snapshot(url) == before


def test_an_unknown_sampler_is_an_error(kept, tiny_data, tiny_teacher, tmp_path, capsys):
    url, before = kept
    argv = run_args(url, tiny_data, tiny_teacher, tmp_path, "--space", "tiny",
                    "--sampler", "cmaes")
    with pytest.raises(SystemExit) as exited:  # argparse's choices: usage and one error line
        main(argv)
    assert exited.value.code == 2
    assert "--sampler: invalid choice: 'cmaes'" in error_line(capsys)
    assert snapshot(url) == before


def test_a_missing_cross_data_folder_is_an_error(kept, tiny_data, tiny_teacher, tmp_path,
                                                 capsys):
    url, before = kept
    missing = tmp_path / "festival"
    argv = run_args(url, tiny_data, tiny_teacher, tmp_path, "--space", "tiny",
                    "--cross-data", str(missing))
    assert main(argv) == 1
    assert f"--cross-data {missing} is not a folder" in error_line(capsys)
    assert snapshot(url) == before


def test_bad_data_for_an_existing_study_is_an_error_and_keeps_it(made, cli_inputs, tmp_path,
                                                                capsys):
    url, before, _ = made
    tiny_data, teacher, _ = cli_inputs
    data = damaged(tiny_data, tmp_path)
    for clip in (data / "sheila").glob("*.wav"):
        clip.unlink()
    argv = run_args(url, data, teacher, tmp_path, "--space", "tiny")
    assert main(argv) == 1
    assert "no 'sheila' clips" in error_line(capsys)
    assert snapshot(url) == before


@pytest.mark.parametrize("url, named", [
    ("postgresql://x:y@127.0.0.1:1/none", "127.0.0.1:1"),
    ("notaurl://", "notaurl://"),
])
def test_an_unreachable_or_malformed_storage_url_is_an_error(url, named, tiny_data, tiny_teacher,
                                                              tmp_path, capsys):
    argv = run_args(url, tiny_data, tiny_teacher, tmp_path, "--space", "tiny")
    assert main(argv) == 1
    message = error_line(capsys)
    assert "cannot open storage" in message and named in message
    assert "x:y@" not in message  # the password is masked
    assert not (tmp_path / "cache").exists()  # failed before any slow work


@pytest.mark.parametrize("option, value, named", [
    ("--timeout", "0", "--timeout: must be > 0"),
    ("--timeout", "-5", "--timeout: must be > 0"),
    ("--trials", "0", "--trials: must be >= 1"),
    ("--margin", "0", "--margin: must be > 0"),
    ("--margin", "inf", "--margin: must be > 0 and finite, got inf"),
    ("--margin", "loose", "--margin: must be a number, got 'loose'"),
    ("--study", "a/b", "--study: 'a/b' is not a study name"),
    ("--study", "../escape", "--study: '../escape' is not a study name"),
])
def test_nonsense_run_numbers_are_refused(option, value, named, kept, tiny_data, tiny_teacher,
                                          tmp_path, capsys):
    url, before = kept
    with pytest.raises(SystemExit) as exit_info:
        main(run_args(url, tiny_data, tiny_teacher, tmp_path, "--space", "tiny", option, value))
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err
    assert snapshot(url) == before


# --- a study has one identity ---------------------------------------------------------------

@pytest.fixture
def made(cli_study, tmp_path):
    """A copy of the CLI-made study: (storage URL, snapshot, cache folder)."""
    folder, db = cli_study
    shutil.copy(db, tmp_path / "made.db")
    url = f"sqlite:///{tmp_path / 'made.db'}"
    return url, snapshot(url), folder


@pytest.fixture(scope="session")
def other_teacher(cli_inputs):
    """Another teacher for the same tiny data (other width, default feature config)."""
    from kws_search.data.front_end import FeatureConfig
    from kws_search.models import CRNNConfig
    from kws_search.teacher import train_teacher
    from kws_search.train import TrainConfig

    data, _, cache = cli_inputs
    folder = cache.parent
    features = prepare_features(data, "sheila", FeatureConfig(), cache, progress=False)
    path = folder / "other-teacher.pt"
    train_teacher(features, path, CRNNConfig(cnn_channels=2, hidden=8),
                  TrainConfig(epochs=1, lr=5e-3, batch_size=32), progress=False,
                  members=1)
    return path


@pytest.mark.slow
def test_more_jobs_than_trials_are_capped_and_said(made, cli_inputs, capsys):
    url, _, folder = made
    data, teacher, _ = cli_inputs
    argv = run_args(url, data, teacher, folder, "--space", "tiny", "--jobs", "1000")
    argv[argv.index("--trials") + 1] = "3"
    assert main(argv) == 0
    assert "--jobs 1000 capped to 3: only 3 trial(s) to run" in capsys.readouterr().out


def test_resuming_with_another_teacher_or_space_is_refused_naming_it(
        made, cli_inputs, other_teacher, tmp_path, capsys):
    url, before, folder = made
    data, teacher, _ = cli_inputs
    assert main(run_args(url, data, other_teacher, folder, "--space", "tiny")) == 1
    message = error_line(capsys)
    assert message.startswith("error: study 'tiny' has 2 trials measured with a different "
                              "teacher (its teacher: "), message
    assert "use a new --study name, or --allow-changes" in message
    space = tmp_path / "wider.yaml"
    space.write_text((Path(__file__).parents[2] / "search_spaces" / "tiny.yaml").read_text()
                     .replace("hidden: {type: int, low: 4, high: 8}",
                              "hidden: {type: int, low: 4, high: 16}"))
    assert main(run_args(url, data, teacher, folder, "--space", str(space))) == 1
    assert "with a different search space;" in error_line(capsys)
    assert main(run_args(url, data, teacher, tmp_path, "--space", "tiny",
                         "--keyword", "yes")) == 1
    assert "with a different keyword;" in error_line(capsys)
    assert main(run_args(url, data, teacher, folder, "--space", "tiny", "--margin", "2")) == 1
    assert ("with a different quality bar (--margin) (its bar: 1.1x the teacher; resume it "
            "with --margin 1.1);") in error_line(capsys)
    assert not (tmp_path / "cache").exists()  # refused before any slow work
    assert snapshot(url) == before


def test_allow_changes_continues_and_records_the_change(made, cli_inputs, other_teacher):
    url, _, folder = made
    data, _, _ = cli_inputs
    argv = run_args(url, data, other_teacher, folder, "--space", "tiny", "--allow-changes",
                    "--jobs", "1")
    argv[argv.index("--trials") + 1] = "3"
    assert main(argv) == 0
    study = optuna.load_study(study_name="tiny", storage=open_storage(url, heartbeat=False))
    assert study.user_attrs["changes"] == [{"at_trial": 2, "changed": ["teacher"]}]
    assert study.user_attrs["teacher_path"] == str(other_teacher.resolve())
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3


# --- export and stream --------------------------------------------------------------------

def test_exporting_a_failed_or_missing_trial_is_an_error(kept, tmp_path, capsys):
    url, _ = kept
    study = optuna.load_study(study_name="tiny", storage=open_storage(url, heartbeat=False))
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL,
                                              user_attrs={"fail_reason": "NaN loss"}))
    failed = len(study.get_trials()) - 1
    for trial, named in ((failed, f"trial {failed} is FAIL"), (99, "no trial 99")):
        argv = ["export", "--storage", url, "--study", "tiny", "--trial", str(trial),
                "--checkpoints", str(tmp_path / "ckpt")]
        assert main(argv) == 1
        assert named in error_line(capsys)
    assert not list(tmp_path.glob("ckpt/*-stream.pt"))


def test_streaming_a_file_that_is_not_audio_is_an_error_naming_it(kept, tmp_path, capsys):
    url, _ = kept
    model = tmp_path / "model.pt"
    assert main(["export", "--storage", url, "--study", "tiny", "--trial", "0",
                 "--checkpoints", str(tmp_path / "ckpt"), "--out", str(model)]) == 0
    capsys.readouterr()
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 100)
    assert main(["stream", str(model), str(text)]) == 1
    message = error_line(capsys)
    assert str(text) in message and "cannot read audio" in message


def test_a_trial_checkpoint_given_to_stream_says_export_it_first(kept, tmp_path, capsys):
    url, _ = kept
    assert main(["export", "--storage", url, "--study", "tiny", "--trial", "0",
                 "--checkpoints", str(tmp_path / "ckpt")]) == 0
    capsys.readouterr()
    [checkpoint] = (tmp_path / "ckpt").glob("tiny-trial0.pt")
    audio = tmp_path / "a.wav"
    sf.write(audio, np.zeros(16_000, dtype=np.float32), 16_000)
    assert main(["stream", str(checkpoint), str(audio)]) == 1
    assert (f"{checkpoint} is a student checkpoint, not a streaming model made by `kws-search "
            "export`; export it first") in error_line(capsys)


def test_export_to_a_folder_or_of_a_missing_study_is_an_error_leaving_nothing(kept, tmp_path,
                                                                             capsys):
    url, _ = kept
    folder = tmp_path / "out"
    folder.mkdir()
    assert main(["export", "--storage", url, "--study", "tiny", "--trial", "0",
                 "--checkpoints", str(tmp_path / "ckpt"), "--out", str(folder)]) == 1
    assert f"--out {folder} is a folder; give a file name" in error_line(capsys)
    missing = tmp_path / "nosuch.db"
    assert main(["export", "--storage", f"sqlite:///{missing}", "--study", "nosuch"]) == 1
    assert "no study database at" in error_line(capsys)
    assert not missing.exists()


def test_a_postgresql_url_without_its_driver_says_what_to_install(tiny_data, tiny_teacher,
                                                                  tmp_path, capsys):
    url = "postgresql+psycopg://u:secret@127.0.0.1/kws"  # psycopg 3: not in the test extras
    assert main(run_args(url, tiny_data, tiny_teacher, tmp_path, "--space", "tiny")) == 1
    message = error_line(capsys)
    assert 'pip install -e ".[postgres]"' in message and "secret" not in message


def test_an_artifact_folder_that_cannot_hold_files_is_refused_before_any_training(
        made, cli_inputs, tmp_path, capsys):
    url, before, folder = made
    data, teacher, _ = cli_inputs
    blocked = tmp_path / "artifacts"
    blocked.write_text("a file where the folder should be")
    argv = run_args(url, data, teacher, folder, "--space", "tiny", "--artifact-dir",
                    str(blocked / "inner"))
    assert main(argv) == 1
    assert f"artifact folder {blocked / 'inner'} is not writable" in error_line(capsys)
    assert snapshot(url) == before
