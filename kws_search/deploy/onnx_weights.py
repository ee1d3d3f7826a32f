"""The weights an ONNX graph computes with, and how the file stores them (float16, int8).

`onnx_weights` gives a float CRNN holding the deployed model's weights (int8 ones
dequantized) and a plan; `store_weights` rewrites the exported graph's initializers by that
plan, so the file stores float16 or int8 values and casts or dequantizes them in the graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from kws_search.checkpoint import CheckpointError
from kws_search.models import CRNN
from kws_search.quantize import convert


def onnx_weights(calibrated: CRNN, quant: str,
                 ) -> tuple[CRNN, dict[str, Any], tuple[tuple[float, int], ...] | None]:
    """A float CRNN holding the weights the ONNX graph computes with, how to store them, and
    the static int8 conv's activation (scale, zero point) in and out (None if it has none).

    `none`: as trained. `float16`: RNN and linear weights rounded to float16 (PyTorch's dynamic
    float16 computes in float32 with them). int8 modes: the deployed int8 weights dequantized;
    the plan maps each such parameter to its int8 values, scales and axis.
    """
    model = CRNN(calibrated.config)
    model.load_state_dict({k: v for k, v in calibrated.state_dict().items()
                           if k in model.state_dict()})
    model.eval()
    plan: dict[str, Any] = {}
    if quant == "none":
        return model, plan, None
    deployed = convert(calibrated, quant)
    qparams = None
    if quant in ("static_int8", "qat"):
        qparams = ((float(deployed.quant.scale), int(deployed.quant.zero_point)),
                   (float(deployed.conv.scale), int(deployed.conv.zero_point)))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not name.endswith("weight") and "weight_" not in name:
                continue
            source = _deployed_weight(deployed, name)
            if source is None:
                continue
            if quant == "float16":
                param.copy_(source.float())
                plan[name] = {"dtype": "float16"}
            else:
                param.copy_(source.dequantize())
                plan[name] = _int8_plan(source)
    return model, plan, qparams


def _deployed_weight(deployed: nn.Module, name: str) -> torch.Tensor | None:
    """The deployed (quantized) form of float parameter `name`, or None if it stayed float."""
    module_name, _, attr = name.rpartition(".")
    module = deployed.get_submodule(module_name)
    if hasattr(module, "get_weight"):  # a dynamic quantized GRU
        return module.get_weight().get(attr)
    weight = getattr(module, "weight", None)
    if callable(weight):  # a dynamic quantized linear or a static quantized conv
        return weight()
    return None


def _int8_plan(weight: torch.Tensor) -> dict[str, Any]:
    if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        scale = weight.q_per_channel_scales().float()
        zero = weight.q_per_channel_zero_points().to(torch.int8)
        axis = int(weight.q_per_channel_axis())
    else:
        scale = torch.tensor(weight.q_scale(), dtype=torch.float32)
        zero = torch.tensor(weight.q_zero_point(), dtype=torch.int8)
        axis = 0
    return {"dtype": "int8", "values": weight.int_repr(), "scale": scale, "zero": zero,
            "axis": axis}


def store_weights(model_proto: Any, plan: dict[str, Any], prefix: str) -> None:
    """Replace float initializers by float16 (+ Cast) or int8 (+ DequantizeLinear)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model_proto.graph
    by_name = {init.name: init for init in graph.initializer}
    nodes = []
    for name, spec in plan.items():
        full = f"{prefix}{name}"
        init = by_name.get(full)
        if init is None:
            raise CheckpointError(f"ONNX export: weight {full} not found in the graph")
        graph.initializer.remove(init)
        if spec["dtype"] == "float16":
            values = numpy_helper.to_array(init).astype(np.float16)
            graph.initializer.append(numpy_helper.from_array(values, f"{full}__f16"))
            nodes.append(helper.make_node("Cast", [f"{full}__f16"], [full],
                                          to=TensorProto.FLOAT))
            continue
        graph.initializer.extend([
            numpy_helper.from_array(spec["values"].numpy().astype(np.int8), f"{full}__q"),
            numpy_helper.from_array(spec["scale"].numpy().astype(np.float32), f"{full}__scale"),
            numpy_helper.from_array(spec["zero"].numpy().astype(np.int8), f"{full}__zero")])
        nodes.append(helper.make_node("DequantizeLinear",
                                      [f"{full}__q", f"{full}__scale", f"{full}__zero"], [full],
                                      axis=spec["axis"]))
    for node in reversed(nodes):
        graph.node.insert(0, node)
