"""Gradients that say where a net looks: the effective receptive field of one unit, the input gradient of a
class score, and Grad-CAM.

Grad-CAM (Selvaraju et al. 2017) is written here with torch.autograd and one forward hook rather than taken
from pytorch-grad-cam: that would be a new dependency for ~20 lines, the nets are tiny (one forward and one
backward pass take milliseconds on a CPU), and its hooks stay on the model between calls, while cnnviz's
models are shared by every session (our hook goes on under `HOOK_LOCK` and comes off in `finally`). Nothing
here accumulates `.grad` on the weights: `torch.autograd.grad` returns the gradients asked for and leaves the
shared model untouched.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .features import HOOK_LOCK, activation_after


def effective_field(model: nn.Sequential, x: torch.Tensor, layer: str, channel: int, row: int,
                    col: int) -> np.ndarray:
    """|d unit / d input| (H, W), summed over the input channels, for unit (channel, row, col) of `layer`.

    The unit is the layer's own output (before a ReLU that follows it), so a unit that ReLU would zero still
    has a gradient; the ReLUs *inside* the net gate it as they do in training. Its nonzero pixels lie inside
    the theoretical field (`conv_arithmetic.unit_field`); on one image it is usually smaller, where ReLUs are off."""
    names = [n for n, _ in model.named_children()]
    trunk = model[: names.index(layer) + 1]  # a new Sequential over the same modules: nothing is changed
    x = x.detach().clone().requires_grad_(True)  # (1, C, H, W)
    was_training = model.training
    try:
        model.eval()
        unit = trunk(x)[0, channel, row, col]
        (grad,) = torch.autograd.grad(unit, x)  # (1, C, H, W)
    finally:
        model.train(was_training)
    return grad[0].abs().sum(0).double().numpy()


def input_gradient(model: nn.Module, x: torch.Tensor, target: int) -> np.ndarray:
    """|d score_target / d input| (H, W), the largest over the input channels (a plain saliency map)."""
    x = x.detach().clone().requires_grad_(True)  # (1, C, H, W)
    was_training = model.training
    try:
        model.eval()
        (grad,) = torch.autograd.grad(model(x)[0, target], x)
    finally:
        model.train(was_training)
    return grad[0].abs().amax(0).double().numpy()


@dataclass(frozen=True)
class GradCam:
    layer: str
    target: int  # the class whose score is explained
    weights: np.ndarray  # (K,): alpha_k, the mean gradient of the score over channel k's map
    cam: np.ndarray  # (h, w): ReLU(sum_k alpha_k A_k) on the layer's grid
    upsampled: np.ndarray  # (H, W): the same, bilinearly resized to the input (to lay over the image)
    probs: np.ndarray  # (num_classes,): the softmax of this image's scores


def grad_cam(model: nn.Module, x: torch.Tensor, target: int, layer: str) -> GradCam:
    """Grad-CAM of class `target` on the map that `layer` outputs, for one image `x` (1, C, H, W)."""
    module = dict(model.named_modules())[layer]
    seen: dict[str, torch.Tensor] = {}

    def keep(m, i, o):  # returns None, so the output is not replaced
        seen["a"] = o

    with HOOK_LOCK:
        was_training, hook = model.training, module.register_forward_hook(keep)
        try:
            model.eval()
            scores = model(x.detach())  # (1, num_classes)
            (grad,) = torch.autograd.grad(scores[0, target], seen["a"])  # (1, K, h, w)
        finally:
            hook.remove()
            model.train(was_training)
    a = seen["a"].detach()
    alpha = grad.mean(dim=(2, 3))  # (1, K)
    cam = F.relu((alpha[:, :, None, None] * a).sum(1, keepdim=True))  # (1, 1, h, w)
    up = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)  # (1, 1, H, W)
    return GradCam(layer, target, alpha[0].double().numpy(), cam[0, 0].double().numpy(),
                   up[0, 0].double().numpy(), scores.detach().softmax(1)[0].double().numpy())


def cam_layer(model: nn.Sequential, where: str = "last conv") -> str:
    """The layer Grad-CAM reads: "last conv" is the last conv's activation (the ReLU after it, as in the
    paper); "last map" the last layer with a spatial map before the classifier (after the downsampling)."""
    names = [n for n, _ in model.named_children()]
    if where == "last conv":
        convs = [n for n, m in model.named_children() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError("this net has no conv layer for Grad-CAM")
        return activation_after(model, convs[-1])
    if where == "last map":
        flat = next((i for i, (_, m) in enumerate(model.named_children()) if isinstance(m, nn.Flatten)), None)
        if not flat:
            raise ValueError("this net has no spatial map before its classifier")
        return names[flat - 1]
    raise ValueError(f"unknown Grad-CAM layer choice {where!r}; choose 'last conv' or 'last map'")


CAM_LAYERS = {"last conv": "the last conv layer's activation", "last map": "the last map before the classifier"}


@dataclass(frozen=True)
class Looks:
    """Where one net looks on one image, for its predicted class and for the true class."""
    name: str
    layer: str  # the layer Grad-CAM read
    predicted: int
    probs: np.ndarray  # (num_classes,)
    cams: dict[str, np.ndarray]  # "predicted" / "true" -> Grad-CAM resized to the input (H, W)
    gradients: dict[str, np.ndarray]  # "predicted" / "true" -> |d score / d input| (H, W)


def where_nets_look(models: dict[str, nn.Sequential], x: torch.Tensor, true_class: int,
                    where: str = "last conv") -> list[Looks]:
    """Grad-CAM and the input gradient of every net in `models` (name -> net) on one image `x` (1, C, H, W)."""
    out = []
    for name, model in models.items():
        layer = cam_layer(model, where)
        first = grad_cam(model, x, 0, layer)
        targets = {"predicted": int(first.probs.argmax()), "true": int(true_class)}
        cams = {k: (first if t == 0 else grad_cam(model, x, t, layer)).upsampled for k, t in targets.items()}
        grads = {k: input_gradient(model, x, t) for k, t in targets.items()}
        out.append(Looks(name, layer, targets["predicted"], first.probs, cams, grads))
    return out


def field_sentence(grad: np.ndarray, field) -> str:
    """How the gradient's nonzero pixels sit against the theoretical field (a `conv_arithmetic.Field`)."""
    h, w = grad.shape
    f = field.clipped(h, w)
    rows, cols = np.nonzero(grad)
    inside = (rows >= f.top) & (rows <= f.bottom) & (cols >= f.left) & (cols <= f.right)
    size = f"{field.size[0]}x{field.size[1]}"
    where = (f"rows {field.top}..{field.bottom} and columns {field.left}..{field.right}"
             + (", partly in the padding" if f != field else ""))
    if not len(rows):
        return (f"Theoretical field: {size} pixels ({where}). The gradient is zero everywhere: for this image "
                "every path from the input to this unit passes a ReLU that is off.")
    return (f"Theoretical field: {size} pixels ({where}). {len(rows)} input pixels have a nonzero gradient, "
            f"{int((~inside).sum())} of them outside the field; they span rows {rows.min()}..{rows.max()} and "
            f"columns {cols.min()}..{cols.max()}.")
