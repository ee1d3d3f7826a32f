"""The CRNN and its config: clear refusals, shapes that match the config, and the step
(streaming) mode giving the whole-clip numbers."""

from __future__ import annotations

import pytest
import torch

from kws_search.models import CRNN, CRNNConfig

FRAMES = 101  # 1 s of log-mel at hop 160


def tiny(seed: int = 0, **overrides) -> CRNN:
    """A float CRNN with 4 channels and 6 hidden units, in eval mode (no dropout)."""
    torch.manual_seed(seed)
    return CRNN(CRNNConfig(**{"cnn_channels": 4, "hidden": 6, **overrides})).eval()


def clips(batch: int = 3, frames: int = FRAMES, seed: int = 1) -> torch.Tensor:
    """Random log-mel-like input [batch, 40, frames]."""
    return torch.randn(batch, 40, frames, generator=torch.Generator().manual_seed(seed)) * 3 - 5


@pytest.mark.parametrize("bad, field", [
    (dict(rnn="lstm"), "model.rnn"),
    (dict(cnn_channels=0), "model.cnn_channels"),
    (dict(hidden=0), "model.hidden"),
    (dict(layers=0), "model.layers"),
    (dict(stride_time=0), "model.stride_time"),
    (dict(kernel_time=-3), "model.kernel_time"),
    (dict(n_mels=0), "model.n_mels"),
    (dict(kernel_freq=41), "model.kernel_freq=41 exceeds n_mels=40"),
])
def test_bad_config_values_are_refused_naming_the_field(bad, field):
    with pytest.raises(ValueError, match=field):
        CRNNConfig(**bad)


def test_config_dict_round_trip_and_unknown_keys_are_named():
    config = CRNNConfig(cnn_channels=3, rnn="rnn", hidden=5, layers=1)
    assert CRNNConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"unknown model config keys: \['channels', 'depth'\]"):
        CRNNConfig.from_dict({**config.to_dict(), "channels": 4, "depth": 2})


@pytest.mark.parametrize("overrides", [
    dict(),
    dict(kernel_freq=7, stride_freq=6, kernel_time=10, stride_time=4),
    dict(n_mels=20, kernel_freq=20, stride_freq=1, kernel_time=1, stride_time=1),
    dict(bidirectional=True),
])
@pytest.mark.parametrize("frames", [20, 27, FRAMES])
def test_config_sizes_match_the_layers_produced(overrides, frames):
    model = tiny(**overrides)
    config = model.config
    x = torch.randn(2, config.n_mels, frames)
    features = model.conv_features(x)  # [batch, steps, channels * freq]
    assert features.shape == (2, config.steps(frames), config.rnn_input)
    assert config.rnn_input == config.cnn_channels * config.conv_freq
    assert model.steps(frames) == config.steps(frames)
    logits, weights = model.forward_parts(x)
    assert logits.shape == (2, config.n_classes)
    assert weights.shape == (2, config.steps(frames))
    assert torch.allclose(weights.sum(-1), torch.ones(2))


def test_too_few_frames_make_no_steps():
    config = CRNNConfig(kernel_time=20, stride_time=8)
    assert [config.steps(f) for f in (0, 19, 20, 27, 28)] == [0, 0, 1, 1, 2]


@pytest.mark.parametrize("overrides", [dict(), dict(rnn="rnn"), dict(layers=1),
                                       dict(stride_time=3, kernel_time=5)],
                         ids=["gru2", "rnn2", "gru1", "short-steps"])
def test_stepwise_equals_forward_for_a_float_model(overrides):
    model = tiny(**overrides)
    x = clips()
    with torch.no_grad():
        whole, stepped = model(x), model.stepwise(x)
    assert stepped.shape == whole.shape
    assert torch.allclose(stepped, whole, atol=1e-6, rtol=0)
    assert not torch.equal(whole[0], whole[1])  # the clips differ, so the check means something


def test_a_scripted_model_steps_like_the_python_one():
    model = tiny()
    scripted = torch.jit.script(model)
    x = clips(2)
    with torch.no_grad():
        assert torch.allclose(scripted.stepwise(x), model.stepwise(x), atol=1e-6, rtol=0)
        assert torch.allclose(scripted.stepwise(x), model(x), atol=1e-6, rtol=0)
    assert scripted.steps(FRAMES) == model.config.steps(FRAMES) == 11


def test_steps_fed_in_chunks_with_the_returned_state_equal_one_call():
    model = tiny(seed=3)
    with torch.no_grad():
        inputs = model.conv_features(clips(1))  # [1, 11, rnn_input]
        outputs, energies, state = model.run_steps(inputs, model.initial_state())
        parts, energy_parts, carried = [], [], model.initial_state()
        for start, stop in ((0, 1), (1, 5), (5, 5), (5, 11)):  # includes an empty chunk
            out, energy, carried = model.run_steps(inputs[:, start:stop], carried)
            parts.append(out)
            energy_parts.append(energy)
    assert outputs.shape == (11, 6) and energies.shape == (11,)
    assert torch.allclose(torch.cat(parts), outputs, atol=1e-6, rtol=0)
    assert torch.allclose(torch.cat(energy_parts), energies, atol=1e-6, rtol=0)
    assert torch.allclose(carried, state, atol=1e-6, rtol=0)
    assert not torch.equal(state, model.initial_state())


def test_initial_state_and_zero_steps():
    model = tiny(layers=2)
    assert model.initial_state().shape == (2, 1, 6)
    assert not model.initial_state().any()
    with torch.no_grad():
        outputs, energies, state = model.run_steps(torch.zeros(1, 0, model.config.rnn_input),
                                                   model.initial_state())
        logits = model.head(outputs, energies)
    assert outputs.shape == (0, 6) and energies.shape == (0,)
    assert torch.equal(state, model.initial_state())
    # nothing heard yet: finite logits (the classifier's bias), not NaN from an empty softmax
    assert logits.shape == (2,) and torch.isfinite(logits).all()
    assert torch.allclose(logits, model.classifier.bias)


def test_a_bidirectional_model_falls_back_to_forward():
    model = tiny(bidirectional=True)
    assert model.initial_state().shape == (4, 1, 6)
    x = clips(2)
    with torch.no_grad():
        assert torch.equal(model.stepwise(x), model(x))
        # stepping it one step at a time would be wrong: the backward direction needs the end
        forward_only = torch.stack([model.head(*model.run_steps(
            model.conv_features(c.unsqueeze(0)), model.initial_state())[:2]) for c in x])
    assert not torch.allclose(forward_only, model(x), atol=1e-4)


@pytest.mark.parametrize("field, value", [("dropout", 1.5), ("dropout", -0.1), ("n_classes", 1)])
def test_dropout_and_classes_out_of_range_are_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"model.{field}"):
        CRNNConfig(**{field: value})
