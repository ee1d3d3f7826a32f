"""Bring your own teacher: a state_dict of the course seminar's CRNN imported as ours.

`SeminarCRNN` below is written with the seminar's layer names and forward pass; an import is
right when our CRNN, loaded from its state_dict, gives the same logits on the same input.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kws_search.checkpoint import CheckpointError
from kws_search.cli import main
from kws_search.models import CRNN
from kws_search.teacher_import import SeminarConfig, load_config, read_state_dict, to_crnn_state


class SeminarAttention(nn.Module):
    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.energy = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.Tanh(),
                                    nn.Linear(hidden_size, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.softmax(self.energy(x), dim=-2)
        return (x * alpha).sum(dim=-2)


class SeminarCRNN(nn.Module):
    """The seminar's base model, as its notebook writes it."""

    def __init__(self, c: SeminarConfig) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, c.cnn_out_channels, kernel_size=c.kernel_size, stride=c.stride),
            nn.Flatten(start_dim=1, end_dim=2))
        conv_out_frequency = (c.n_mels - c.kernel_size[0]) // c.stride[0] + 1
        self.gru = nn.GRU(input_size=conv_out_frequency * c.cnn_out_channels,
                          hidden_size=c.hidden_size, num_layers=c.gru_num_layers, dropout=0.1,
                          bidirectional=c.bidirectional, batch_first=True)
        h = c.hidden_size * (2 if c.bidirectional else 1)
        self.attention = SeminarAttention(h)
        self.classifier = nn.Linear(h, c.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv_output = self.conv(x.unsqueeze(1)).transpose(-1, -2)
        gru_output, _ = self.gru(conv_output)
        return self.classifier(self.attention(gru_output))


CONFIGS = {
    "seminar defaults": SeminarConfig(),
    "bidirectional": SeminarConfig(bidirectional=True),
    "one layer, other conv": SeminarConfig(kernel_size=(7, 12), stride=(3, 6),
                                           cnn_out_channels=4, hidden_size=24,
                                           gru_num_layers=1),
    "bidirectional, 3 layers, 3 classes": SeminarConfig(hidden_size=16, gru_num_layers=3,
                                                        bidirectional=True, num_classes=3),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_an_imported_seminar_model_gives_the_same_logits(name, tmp_path):
    config = CONFIGS[name]
    torch.manual_seed(0)
    reference = SeminarCRNN(config).eval()
    path = tmp_path / "seminar.pt"
    torch.save(reference.state_dict(), path)
    ours = CRNN(config.crnn()).eval()
    ours.load_state_dict(to_crnn_state(read_state_dict(path), config))
    x = torch.randn(5, config.n_mels, 101)
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    assert got.shape == (5, config.num_classes)
    assert torch.allclose(got, expected, atol=1e-6, rtol=0), (got - expected).abs().max()


@pytest.mark.parametrize("saved, settings, message", [
    (SeminarConfig(hidden_size=32), SeminarConfig(),
     "'gru.weight_ih_l0' has shape [96, 144], expected [192, 144] for n_mels 40, kernel_size "
     "[5, 20], stride [2, 8], cnn_out_channels 8, hidden_size 64"),
    (SeminarConfig(gru_num_layers=1), SeminarConfig(),
     "the state_dict has no 'gru.weight_ih_l1' (shape [192, 64] expected"),
    (SeminarConfig(bidirectional=True), SeminarConfig(),
     "the state_dict has 'gru.weight_ih_l0_reverse', which a model with n_mels 40"),
])
def test_a_state_dict_that_does_not_fit_names_the_key_and_shapes(saved, settings, message,
                                                                  tmp_path):
    path = tmp_path / "seminar.pt"
    torch.save(SeminarCRNN(saved).state_dict(), path)
    with pytest.raises(CheckpointError, match="check the teacher settings") as info:
        to_crnn_state(read_state_dict(path), settings)
    assert message in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("hidden_size: [1\n", r"not valid YAML \(expected ',' or '\]'.* at line 2, column 1\)$"),
    ("- 1\n", "expected a mapping of seminar settings"),
    ("hidden: 8\n", "unknown teacher setting 'hidden'"),
])
def test_bad_teacher_settings_are_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    with pytest.raises(CheckpointError, match=message) as info:
        load_config(path)
    assert "\n" not in str(info.value)


def test_a_whole_pickled_model_is_refused_not_unpickled(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(SeminarCRNN(SeminarConfig()), path)
    with pytest.raises(CheckpointError, match=r"holds a whole pickled model.*model.state_dict\(\)"):
        read_state_dict(path)


@pytest.mark.slow
def test_import_then_search_then_refuse_streaming_a_bidirectional_teacher(
        tiny_data, tmp_path, capsys):
    """`teacher --import` measures and saves it; `run` searches against it end to end;
    students stay unidirectional; a bidirectional teacher is not exported as a stream."""
    config = SeminarConfig(hidden_size=8, gru_num_layers=1, bidirectional=True)
    source = tmp_path / "mine.pt"
    torch.save(SeminarCRNN(config).state_dict(), source)
    settings = tmp_path / "mine.yaml"
    settings.write_text("hidden_size: 8\ngru_num_layers: 1\n")
    teacher = tmp_path / "teacher.pt"
    common = ["--data", str(tiny_data), "--cache", str(tmp_path / "cache"), "--teacher",
              str(teacher)]
    assert main(["teacher", *common, "--import", str(source), "--import-config", str(settings),
                 "--bidirectional"]) == 0
    out = capsys.readouterr().out
    assert "bidirectional True" in out and "validation quality" in out
    assert main(["run", *common, "--space", "tiny", "--trials", "2", "--jobs", "1",
                 "--no-cross-data", "--storage", f"sqlite:///{tmp_path / 's.db'}"]) == 0
    assert "2 complete" in capsys.readouterr().out
    assert main(["export", *common, "--export-teacher", "--out", str(tmp_path / "t.pt")]) == 1
    assert "cannot stream" in capsys.readouterr().err
    assert main(["teacher", *common, "--import", str(source)]) == 1  # exists, and misfits
    assert "check the teacher settings" in capsys.readouterr().err


def test_training_over_an_imported_teacher_with_other_features_refuses_and_keeps_it(
        tiny_data, tmp_path, capsys):
    """`kws-search teacher` never overwrites a teacher that does not match (here imported with
    32 mel bands); it says how to replace it, and the file is left as it was."""
    source = tmp_path / "mine.pt"
    torch.save(SeminarCRNN(SeminarConfig(n_mels=32, hidden_size=8, gru_num_layers=1)
                           ).state_dict(), source)
    settings = tmp_path / "mine.yaml"
    settings.write_text("n_mels: 32\nhidden_size: 8\ngru_num_layers: 1\n")
    teacher = tmp_path / "teacher.pt"
    common = ["--data", str(tiny_data), "--cache", str(tmp_path / "cache"), "--teacher",
              str(teacher)]
    assert main(["teacher", *common, "--import", str(source), "--import-config",
                 str(settings)]) == 0
    saved = teacher.read_bytes()
    capsys.readouterr()
    assert main(["teacher", *common, "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert "was imported with other feature settings" in err and "--force" in err
    assert len(err.strip().splitlines()) == 1
    assert teacher.read_bytes() == saved
