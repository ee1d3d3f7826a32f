"""Peak RAM of a streaming model: the most bytes one step of the exported stream holds at once.

A step (`deploy.onnx.BlockStep`: one block of audio, one RNN step) holds the state that lives
between steps (the front end's `tail` of samples, the conv's `frames`, the RNN's `hidden`, the
attention `window`), the state it writes for the next step, the block of audio, and the
largest set of activations that are alive together at one stage of the step: the front end
(the block's samples, its spectrum and the spectrum squared: every frame the conv reads from
the block at once, as the graph computes them), the conv (its input columns and output), the
RNN (its input, gates and output per layer) or the attention head (the window being updated).
Everything is float32, as the graph computes it in every quantization mode (int8 modes store
their weights as int8: weights are `bytes`, not RAM).

`peak_ram_bytes` counts that from the architecture alone (no model is built), so the search
checks a budget before training. `graph_peak_bytes` is the check: a liveness count over an
exported ONNX graph's tensors (a tensor is alive from the node that makes it to the last node
that reads it; graph inputs for the whole step, outputs from when they are made; weights and
everything computed from weights alone are constants, not RAM).
"""

from __future__ import annotations

from pathlib import Path

from kws_search.data.front_end import FeatureConfig
from kws_search.geometry import StreamGeometry
from kws_search.models import CRNNConfig

FLOAT = 4  # bytes of a float32: every activation and state of the graph


def state_floats(config: CRNNConfig, features: FeatureConfig, window: int) -> dict[str, int]:
    """Floats of each piece of state a stream keeps between steps (`StreamGeometry` says
    which samples and frames; the ONNX graph's state inputs are these)."""
    geometry = StreamGeometry.of(config, features)
    return {"tail": geometry.tail_samples,
            "frames": geometry.carried_frames * config.n_mels,
            "hidden": config.layers * config.hidden,
            "window": window * (1 + config.n_classes)}


def peak_ram_bytes(config: CRNNConfig, features: FeatureConfig,
                   window_seconds: float = 1.0) -> int:
    """Peak RAM of one streaming step (module docstring), in bytes: the audio block, the
    samples the front end frames (tail + block, kept to the end for the next tail), the state
    in and out, and the largest input + output of one stage of the step."""
    geometry = StreamGeometry.of(config, features)
    window = geometry.window_steps(window_seconds)
    state = sum(state_floats(config, features, window).values())
    hop, n_fft = features.hop_length, features.n_fft
    block = config.stride_time * hop
    need = geometry.block_frames  # frames of the block the conv reads
    samples = n_fft - hop + block if n_fft > hop else 0  # tail + block, a new tensor
    read = n_fft - hop + need * hop  # the samples those frames cover
    sliced = read if need < config.stride_time else 0  # frames before them are skipped
    reshaped = read if n_fft == hop else 0  # frames that do not overlap: the samples reshaped
    spectrum = 2 * (n_fft // 2 + 1) * need  # cos and sin parts of every frame read
    gates = 3 if config.rnn == "gru" else 1
    stages = (sliced + reshaped,
              (read if sliced or reshaped else 0) + spectrum,  # the DFT
              2 * spectrum,  # its square
              spectrum + config.n_mels * need,  # power and mel in one product
              config.n_mels * config.kernel_time + config.rnn_input,  # the conv
              config.rnn_input + 2 * gates * config.hidden + config.hidden,  # one RNN layer
              2 * window * (1 + config.n_classes))  # the window, shifted by one step
    return FLOAT * (block + samples + 2 * state + max(stages))


def graph_peak_bytes(path: Path | str) -> int:
    """The check of `peak_ram_bytes`: the most bytes of non-constant tensors alive at once
    while an exported ONNX graph runs its nodes in order (module docstring)."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    sizes = {}
    for value in [*graph.input, *graph.output, *graph.value_info]:
        dims = value.type.tensor_type.shape.dim
        count = 1
        for dim in dims:
            count *= dim.dim_value
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).itemsize
        sizes[value.name] = count * itemsize
    inputs = {value.name for value in graph.input}
    varying = set(inputs)  # tensors that depend on a graph input
    for node in graph.node:
        if any(name in varying for name in node.input):
            varying.update(node.output)
    last_use = {}
    for step, node in enumerate(graph.node):
        for name in node.input:
            last_use[name] = step
    outputs = {value.name for value in graph.output}
    alive = set(inputs)
    peak = sum(sizes[name] for name in alive)
    for step, node in enumerate(graph.node):
        alive.update(name for name in node.output if name in varying)
        peak = max(peak, sum(sizes.get(name, 0) for name in alive))
        alive = {name for name in alive
                 if name in inputs or name in outputs or last_use.get(name, -1) > step}
    return peak
