"""The lecture's summary table (torchsummary's format), built from a real forward pass.

Data first, text second (like torchinfo): `summary()` returns a `Summary` with one row per leaf
layer, recorded by forward hooks that are always removed, and the model's train/eval mode restored.
"""
from __future__ import annotations

import math
from functools import lru_cache
from dataclasses import dataclass

import torch
import torch.nn as nn

from .conv_arithmetic import receptive_fields, window_formula
from .costs import layer_macs
from .downsample import downsample_of
from .models import build_model, device_of

MB = 1024 ** 2


@dataclass
class Summary:
    rows: list[dict]  # name, type, layer, output_shape, params, trainable, formula, downsample
    input_shape: tuple[int, ...]
    total_params: int
    trainable_params: int
    input_mb: float
    forward_backward_mb: float
    params_mb: float
    macs: int = 0  # multiply-adds per image: the rows' counts summed (cnnviz.costs)
    activation_bytes: int = 0  # float32 outputs of every layer for one image (forward only)

    @property
    def total_mb(self) -> float:
        return self.input_mb + self.forward_backward_mb + self.params_mb

    def to_frame(self):
        import pandas as pd

        df = pd.DataFrame(self.rows)
        df["output_shape"] = df["output_shape"].map(lambda s: "[-1, " + ", ".join(map(str, s)) + "]")
        return df

    def to_dict(self) -> dict:
        return {"input_shape": list(self.input_shape), "total_params": self.total_params,
                "trainable_params": self.trainable_params,
                "non_trainable_params": self.total_params - self.trainable_params,
                "input_mb": self.input_mb, "forward_backward_mb": self.forward_backward_mb,
                "params_mb": self.params_mb, "total_mb": self.total_mb, "macs": self.macs,
                "activation_bytes": self.activation_bytes,
                "layers": [{**r, "output_shape": list(r["output_shape"])} for r in self.rows]}

    def to_text(self) -> str:
        line = "-" * 64
        out = [line, f"{'Layer (type)':>25}  {'Output Shape':>22}  {'Param #':>12}", "=" * 64]
        for r in self.rows:
            shape = "[-1, " + ", ".join(map(str, r["output_shape"])) + "]"
            out.append(f"{r['layer']:>25}  {shape:>22}  {r['params']:>12,}")
        out += ["=" * 64, f"Total params: {self.total_params:,}",
                f"Trainable params: {self.trainable_params:,}",
                f"Non-trainable params: {self.total_params - self.trainable_params:,}", line,
                f"Input size (MB): {self.input_mb:.2f}",
                f"Forward/backward pass size (MB): {self.forward_backward_mb:.2f}",
                f"Params size (MB): {self.params_mb:.2f}",
                f"Estimated Total Size (MB): {self.total_mb:.2f}", line,
                f"Multiply-adds per image: {self.macs:,}",
                f"Activation memory per image (KB): {self.activation_bytes / 1024:.1f}", line]
        return "\n".join(out)


def summary(model: nn.Module, input_shape: tuple[int, ...]) -> Summary:
    """Run `model` once on zeros of `input_shape` (C, H, W), on the model's device, and record every leaf layer."""
    rows, hooks = [], []
    counts: dict[str, int] = {}

    def hook(name):
        def record(module, inputs, output):
            kind = type(module).__name__
            counts[kind] = counts.get(kind, 0) + 1
            x = inputs[0] if inputs and torch.is_tensor(inputs[0]) else None
            params = sum(p.numel() for p in module.parameters(recurse=False))
            trainable = sum(p.numel() for p in module.parameters(recurse=False) if p.requires_grad)
            rows.append({"name": name, "type": kind, "layer": f"{kind}-{len(rows) + 1}",
                         "output_shape": tuple(output.shape[1:]), "params": params,
                         "trainable": trainable, "fixed": kind == "EngineeredFrontEnd",
                         "macs": layer_macs(module, output), "activation_bytes": output[0].numel() * 4,
                         "downsample": getattr(downsample_of(module), "name", None),  # the registry's entry
                         "formula": window_formula(module, x.shape[-2]) if x is not None and x.dim() == 4 else ""})
        return record

    for name, module in model.named_modules():
        if name and not list(module.children()):
            hooks.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device_of(model)))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if isinstance(model, nn.Sequential):
        rf = {r["name"]: r["rf"] for r in receptive_fields(model, tuple(input_shape))}
        for r in rows:
            r["receptive_field"] = rf.get(r["name"].split(".")[0])
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    activations = sum(math.prod(r["output_shape"]) for r in rows)
    return Summary(rows, tuple(input_shape), total, trainable, math.prod(input_shape) * 4 / MB,
                   2 * activations * 4 / MB, total * 4 / MB, sum(r["macs"] for r in rows),
                   activations * 4)


@lru_cache(maxsize=256)
def arch_summary(arch: str, input_shape: tuple[int, ...], num_classes: int = 10,
                 downsample: str | None = None) -> Summary:
    """The summary of a registered net for `input_shape`, once per process (a page's table and costs).

    Built for real, not on the meta device: meta tensors run torch's Python meta kernels, whose first use
    imports ~490 modules (sympy among them; 5.3 s measured on a loaded 2-core machine)."""
    return summary(build_model(arch, tuple(input_shape), num_classes, downsample), tuple(input_shape))


def summary_table(s: Summary):
    """The lecture's columns (Layer (type), Output Shape, Param #) + the layer's name and formula."""
    import pandas as pd

    return pd.DataFrame({
        "Layer (type)": [r["layer"] for r in s.rows],
        "Output Shape": ["[-1, " + ", ".join(map(str, r["output_shape"])) + "]" for r in s.rows],
        "Param #": [f"{r['params']:,}" for r in s.rows],
        "name": [r["name"] for r in s.rows],
        "output size S_o": [r["formula"] for r in s.rows],
    })


_KINDS = {"Conv2d": "conv", "Linear": "fc", "Resize": "resize", "Flatten": "flatten",
          "EngineeredFrontEnd": "front"}


def diagram_layers(s: Summary) -> list[dict]:
    """The layers that change the shape (activations dropped), with their kind, channels and size.

    `kind` is "downsample" for a layer built from the downsampling registry (its `downsample` names the
    method), else conv / fc / resize / flatten / front / other. A vector of N units is drawn as N
    channels of 1x1: exactly how a 1x1 convolution sees it.
    """
    out = [{"name": "input", "kind": "input", "downsample": None, "shape": tuple(s.input_shape), "params": 0,
            "formula": ""}]
    prev = tuple(s.input_shape)
    for r in s.rows:
        shape = tuple(r["output_shape"])
        if r["type"] in ("ReLU", "Identity") or (shape == prev and r["params"] == 0):
            continue
        kind = "downsample" if r["downsample"] else _KINDS.get(r["type"], "other")
        out.append({"name": r["name"], "kind": kind, "downsample": r["downsample"], "shape": shape,
                    "params": r["params"], "formula": r["formula"], "layer": r["layer"]})
        prev = shape
    for d in out:
        d["channels"] = d["shape"][0]
        d["size"] = d["shape"][1] if len(d["shape"]) == 3 else 1
    return out


def resize_note(s: Summary, in_size: int, dataset: str) -> str | None:
    """Why the table starts with a `resize` layer (VGG16 on a small image), with the sizes it goes through;
    None when the net has none."""
    resize = [r for r in s.rows if r["name"] == "resize"]
    if not resize:
        return None
    target = resize[0]["output_shape"][-1]
    last = [r for r in s.rows if len(r["output_shape"]) == 3][-1]["output_shape"][-1]
    return (f"The first row is a `resize` layer: VGG16 halves the image five times, and {in_size} pixels "
            f"would shrink to 0 before the last block, so this {dataset} input is resized "
            f"{in_size}->{target} first (bilinear interpolation). The last block then ends at {last}x{last}.")
