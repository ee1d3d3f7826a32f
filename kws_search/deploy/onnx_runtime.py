"""The ONNX Runtime client of an exported file: numpy in, keyword probabilities out.

Needs only numpy and onnxruntime (`pip install -e ".[onnx]"`); the file's layout and
metadata are described in `kws_search.deploy.onnx`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from kws_search.options import EXPORT_INFO

NO_PROBS = np.zeros(0, np.float32)  # what a chunk that completes no step returns


class OnnxStream:
    """Stream audio of any chunk sizes through an exported ONNX file (numpy + onnxruntime).

    `stream(chunk)` returns the keyword probability after each RNN step the chunk completes;
    `reset()` forgets the stream. The example loop of docs/export.md, made cheap per call: the block
    being filled and every state live in fixed numpy buffers bound to the session (two
    bindings, state in one set and next state in the other, used in turn), so a run converts
    nothing, and a 10 ms hop that completes no block only copies its samples.
    """

    def __init__(self, path: Path | str, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        # without QDQ fusion ONNX Runtime folds the int8 modes' DequantizeLinear of weights
        # when it loads (with it, every call dequantizes them again: 1 us per hop for a small
        # qat student); the static conv's roundings then run as float ops: the same numbers
        options.add_session_config_entry("session.disable_quant_qdq", "1")
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.block = int(meta["block_samples"])
        self.lead = int(meta["lead_samples"])
        self.warmup = int(meta["warmup_blocks"])
        self.info = json.loads(meta.get(EXPORT_INFO, "{}"))
        self.inputs = self.session.get_inputs()
        self.names = [i.name for i in self.inputs[1:]]
        self.pending = np.zeros(self.block, np.float32)  # the block being filled
        self.prob = np.zeros((), np.float32)
        buffers = [[np.zeros(i.shape, np.float32) for i in self.inputs[1:]] for _ in range(2)]
        self.bindings = [self._binding(ort, buffers[k], buffers[1 - k]) for k in range(2)]
        self.buffers = buffers
        self.reset()

    def _binding(self, ort: Any, state: list[np.ndarray], next_state: list[np.ndarray]) -> Any:
        """A binding that reads `state` and the pending block and writes `next_state`."""
        binding = self.session.io_binding()
        for name, array in (("audio", self.pending), *zip(self.names, state, strict=True)):
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array))
        for name, array in (("prob", self.prob),
                            *zip([f"next_{n}" for n in self.names], next_state, strict=True)):
            binding.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(array))
        return binding

    def reset(self) -> None:
        for buffers in self.buffers:
            for array in buffers:
                array.fill(0)
        self.turn = 0  # which buffer set holds the current state
        self.filled = self.lead  # the leading zeros that align blocks with steps
        self.pending[:self.lead] = 0
        self.blocks = 0

    def step(self, block: np.ndarray) -> float:
        """One block of exactly `block` samples through the graph -> probability after it
        (during the warm-up blocks only the front end's state moves on)."""
        if block is not self.pending:
            self.pending[:] = block
        self.session.run_with_iobinding(self.bindings[self.turn])
        self.turn = 1 - self.turn
        self.blocks += 1
        if self.blocks <= self.warmup:  # hidden and the window stay empty
            for array in self.buffers[self.turn][-2:]:
                array.fill(0)
        return float(self.prob)

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        if type(chunk) is not np.ndarray or chunk.ndim != 1:  # else the copy below converts
            chunk = np.asarray(chunk, np.float32).reshape(-1)
        end = self.filled + chunk.size
        if end < self.block:  # the common 10 ms hop: copy its samples, nothing more
            self.pending[self.filled:end] = chunk
            self.filled = end
            return NO_PROBS
        probs = []
        while chunk.size:
            take = min(self.block - self.filled, chunk.size)
            self.pending[self.filled:self.filled + take] = chunk[:take]
            self.filled += take
            chunk = chunk[take:]
            if self.filled == self.block:
                prob = self.step(self.pending)
                self.filled = 0
                if self.blocks > self.warmup:
                    probs.append(prob)
        return np.asarray(probs, np.float32)
