"""The registry of the lecture's architectures: one entry per network, one builder each.

Like torchvision's `vgg.py`, a convolutional trunk is a small config list (`(out, kernel, padding)`
for a conv, `"D"` for a 2x2 downsampling) turned into layers by `make_layers`; the head's flatten size
is measured from the input shape by a dry forward, never typed per dataset. Every model is an
`nn.Sequential` with readable names (`conv1`, `relu1`, `pool1`, `fc1`, ...) so feature maps can be
picked by name.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from .downsample import Resize, get_downsample, list_downsamples, make_downsample
from .engineered import FRONT_CHANNELS, EngineeredFrontEnd

Shape = tuple[int, int, int]  # (C, H, W)


@dataclass(frozen=True)
class ArchSpec:
    """One registered network and what the pages and the CLI say about it."""
    name: str
    builder: Callable[..., nn.Sequential]
    description: str
    only: tuple[str, ...] | None  # the `downsample=` values it accepts; None: every registered method
    default_downsample: str | None
    family: str  # "cnn", "baseline" (mlp, engineered front ends)
    label: str  # display name ("LeNet-5"); the registry name where the lecture's word is the name
    sees: str = ""  # what its classifier head is fed, for the baselines table ("raw pixels")
    called: str = ""  # how a sentence names the net ("the MLP")
    front: str | None = None  # a front end ranked against the others on one head ("raw pixels"), or None
    baseline: bool = False  # a member of the lecture's "engineered vs CNN features" comparison

    @property
    def downsamples(self) -> tuple[str, ...]:
        """Accepted `downsample=` values, resolved now: a method registered later is accepted too."""
        return tuple(list_downsamples()) if self.only is None else self.only


_REGISTRY: dict[str, ArchSpec] = {}


def register(name: str, description: str, *, downsamples: tuple[str, ...] | None = None, default="max",
             family="cnn", label: str | None = None, sees: str = "", called: str | None = None,
             front: str | None = None, baseline: bool = False):
    """Decorator adding a builder to the registry; a duplicate name is a programming error.

    `downsamples=None` accepts every downsampling method registered at build time; `()` none.
    """

    def wrap(builder):
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} registered twice")
        takes = downsamples is None or bool(downsamples)
        _REGISTRY[name] = ArchSpec(name, builder, description, None if downsamples is None else tuple(downsamples),
                                   default if takes else None, family, label or name, sees,
                                   called or label or name, front, baseline)
        return builder

    return wrap


def unregister(name: str) -> None:
    """Remove an architecture (tests register throwaway nets and take them out again)."""
    del _REGISTRY[name]


def list_archs(family: str | None = None) -> list[str]:
    return [n for n, s in _REGISTRY.items() if family is None or s.family == family]


def list_baselines() -> list[str]:
    """The comparison group in the order the lecture builds it: the front ends sharing one head first
    (raw pixels, fixed, learned), then the full CNN."""
    members = [s for s in _REGISTRY.values() if s.baseline]
    return [s.name for s in members if s.front is not None] + [s.name for s in members if s.front is None]


def get_arch(name: str) -> ArchSpec:
    if name not in _REGISTRY:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def resolve_downsample(arch: str, downsample: str | None) -> str | None:
    """The downsample option `arch` will use: the given one if it accepts it, else its default."""
    spec = get_arch(arch)
    if downsample is None:
        return spec.default_downsample
    if downsample not in spec.downsamples:
        accepted = ", ".join(spec.downsamples) or "none (it does not downsample)"
        raise ValueError(f"{arch} does not take downsample={downsample!r}; accepted: {accepted}")
    return downsample


def build_model(arch: str, in_shape: Shape = (1, 28, 28), num_classes: int = 10,
                downsample: str | None = None) -> nn.Sequential:
    """Build `arch` for inputs of `in_shape` (C, H, W) with the given downsampling option."""
    spec = get_arch(arch)
    method = resolve_downsample(arch, downsample)
    return spec.builder(tuple(in_shape), num_classes, method)


# ---- building blocks -------------------------------------------------------------------------

def make_layers(cfg: list, in_channels: int, downsample: str | None) -> tuple[OrderedDict, int]:
    """Conv trunk from a config list; `"D"` is a 2x2 downsampling layer, or stride 2 in the conv before
    it for a method that `strides_conv` (then no layer is added, so layer names stay `pool1`, ...)."""
    strided = downsample is not None and get_downsample(downsample).strides_conv
    layers, c, n_conv, n_pool = OrderedDict(), in_channels, 0, 0
    for i, item in enumerate(cfg):
        if item == "D":
            if not strided:
                n_pool += 1
                layers[f"pool{n_pool}"] = make_downsample(downsample)
            continue
        out, k, pad = item
        stride = 2 if strided and i + 1 < len(cfg) and cfg[i + 1] == "D" else 1
        n_conv += 1
        layers[f"conv{n_conv}"] = nn.Conv2d(c, out, k, stride=stride, padding=pad)
        layers[f"relu{n_conv}"] = nn.ReLU()
        c = out
    return layers, c


def device_of(model: nn.Module) -> torch.device:
    """Where `model`'s tensors live: "meta" for a net built only for its shapes (no memory, no arithmetic)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.get_default_device()  # no tensors (a Flatten-only trunk): where new ones go, meta inside `torch.device("meta")`


@torch.no_grad()
def output_shape(layers: OrderedDict | nn.Module, in_shape: Shape) -> tuple[int, ...]:
    """Shape (without batch) after `layers`, measured by a forward pass on zeros."""
    trunk = layers if isinstance(layers, nn.Module) else nn.Sequential(layers)
    return tuple(trunk(torch.zeros(1, *in_shape, device=device_of(trunk))).shape[1:])


def add_head(layers: OrderedDict, in_shape: Shape, hidden: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """Flatten + Linear layers (ReLU between), with the flatten size measured from `in_shape`."""
    features = output_shape(layers, in_shape)
    n = 1
    for d in features:
        n *= d
    layers["flatten"] = nn.Flatten()
    for i, width in enumerate(hidden, start=1):
        layers[f"fc{i}"] = nn.Linear(n, width)
        layers[f"relu_fc{i}"] = nn.ReLU()
        n = width
    layers[f"fc{len(hidden) + 1}"] = nn.Linear(n, num_classes)
    return nn.Sequential(layers)


# ---- the lecture's networks ------------------------------------------------------------------

@register("conv_only", "Four 7x7 convs (32-64-128-256), no downsampling; the lecture's first net.",
          downsamples=())
def conv_only(in_shape, num_classes, downsample):
    layers, _ = make_layers([(32, 7, 0), (64, 7, 0), (128, 7, 0), (256, 7, 0)], in_shape[0], None)
    return add_head(layers, in_shape, (128,), num_classes)


_CONV_POOL = [(32, 3, 0), (64, 3, 0), "D", (128, 3, 0), (256, 3, 0), "D", (512, 3, 0)]


@register("conv_pool", "Five 3x3 convs (32..512) with a 2x2 downsampling after the 2nd and 4th.")
def conv_pool(in_shape, num_classes, downsample):
    layers, _ = make_layers(_CONV_POOL, in_shape[0], downsample)
    return add_head(layers, in_shape, (), num_classes)


@register("conv_stride", "The same five convs, downsampling by stride 2 in the 2nd and 4th conv.",
          downsamples=("stride",), default="stride")
def conv_stride(in_shape, num_classes, downsample):
    return conv_pool(in_shape, num_classes, "stride")


@register("downsample_compare", "Conv 5x5 (32) + ReLU, one 2x2 downsampling, FC 128, FC 10: "
          "the lecture's net for comparing downsampling methods.")
def downsample_compare(in_shape, num_classes, downsample):
    layers, _ = make_layers([(32, 5, 0), "D"], in_shape[0], downsample)
    return add_head(layers, in_shape, (128,), num_classes)


@register("same_padding", "The padding example: five 3x3 convs with padding 1, stride 2 in the 2nd "
          "and 4th, so 28 -> 28 -> 14 -> 14 -> 7 -> 7.", default="stride")
def same_padding(in_shape, num_classes, downsample):
    cfg = [(32, 3, 1), (64, 3, 1), "D", (128, 3, 1), (256, 3, 1), "D", (512, 3, 1)]
    layers, _ = make_layers(cfg, in_shape[0], downsample)
    return add_head(layers, in_shape, (), num_classes)


_LENET_TRUNK = [(32, 3, 1), "D", (64, 3, 1), "D"]


@register("lenet_fc", "3x3 convs 32/64 (padding 1) with 2x2 downsampling, then FC 128 and FC 10.")
def lenet_fc(in_shape, num_classes, downsample):
    layers, _ = make_layers(_LENET_TRUNK, in_shape[0], downsample)
    return add_head(layers, in_shape, (128,), num_classes)


@register("lenet_1x1", "lenet_fc with its FC layers replaced by a conv over the whole last map and a "
          "1x1 conv: same parameters, and it accepts larger inputs (a map of class scores).")
def lenet_1x1(in_shape, num_classes, downsample):
    layers, c = make_layers(_LENET_TRUNK, in_shape[0], downsample)
    _, h, w = output_shape(layers, in_shape)
    layers["conv3"] = nn.Conv2d(c, 128, kernel_size=(h, w))  # plays fc1: one window = whole map
    layers["relu3"] = nn.ReLU()
    layers["conv4"] = nn.Conv2d(128, num_classes, kernel_size=1)  # plays fc2
    layers["flatten"] = nn.Flatten()
    return nn.Sequential(layers)


@register("lenet5", "LeNet-5: conv 5x5 (6, padding 2), 2x2 downsampling, conv 5x5 (16), 2x2 "
          "downsampling, FC 120, FC 84, FC 10.", label="LeNet-5", sees="two learned conv layers + pooling",
          baseline=True)
def lenet5(in_shape, num_classes, downsample):
    layers, _ = make_layers([(6, 5, 2), "D", (16, 5, 0), "D"], in_shape[0], downsample)
    return add_head(layers, in_shape, (120, 84), num_classes)


VGG16_MIN_SIZE = 32  # five 2x2 downsamplings need 32 pixels to end at 1x1


@register("vgg16", "VGG16: 13 3x3 convs in five blocks + the lecture's classifier (128-128-10). "
          "Inputs smaller than 32x32 are first resized to 32x32 (a `resize` layer in the summary).")
def vgg16(in_shape, num_classes, downsample):
    cfg = [(64, 3, 1), (64, 3, 1), "D", (128, 3, 1), (128, 3, 1), "D",
           (256, 3, 1), (256, 3, 1), (256, 3, 1), "D", (512, 3, 1), (512, 3, 1), (512, 3, 1), "D",
           (512, 3, 1), (512, 3, 1), (512, 3, 1), "D"]
    layers = OrderedDict()
    c, h, w = in_shape
    if min(h, w) < VGG16_MIN_SIZE:
        # Honest adaptation: the 224x224 VGG ends at 7x7 after five halvings; 28 pixels would reach 0.
        layers["resize"] = Resize(VGG16_MIN_SIZE)
        h = w = VGG16_MIN_SIZE
    trunk, _ = make_layers(cfg, c, downsample)
    layers.update(trunk)
    return add_head(layers, in_shape, (128, 128), num_classes)


SLIDE_VGG16_SIZE = 224  # the slide's `Linear(512 * 7 * 7, 128)` is VGG16 for 224x224 inputs


@dataclass(frozen=True)
class SlideDifference:
    """cnnviz's VGG16 against the slide's code: the only layer that differs is the first classifier layer,
    whose input is the last block's map, 512 channels of (input size / 2**5) squared."""
    input_size: int  # what the convs see (after the resize of a small image)
    final_map: int  # the last block's map size: input_size / 32
    first_fc_in: int  # 512 * final_map**2
    first_fc_params: int
    slide_final_map: int  # 7, for 224x224
    slide_first_fc_in: int  # 512 * 7 * 7 = 25,088
    slide_first_fc_params: int
    total_params: int  # cnnviz's whole net
    slide_total_params: int  # the same net with the slide's classifier layer


def vgg16_slide_difference(in_shape: Shape, num_classes: int = 10) -> SlideDifference:
    """Build cnnviz's VGG16 for `in_shape` (on the meta device: nothing allocated) and count both variants."""
    with torch.device("meta"):
        model = build_model("vgg16", in_shape, num_classes)
    first_fc = next(m for m in model.modules() if isinstance(m, nn.Linear))
    size = max(in_shape[1], VGG16_MIN_SIZE)
    slide_map = SLIDE_VGG16_SIZE // 2 ** 5
    slide_in = 512 * slide_map ** 2
    fc_params = count_params(first_fc)
    slide_fc_params = slide_in * first_fc.out_features + first_fc.out_features
    total = count_params(model)
    return SlideDifference(size, size // 2 ** 5, first_fc.in_features, fc_params, slide_map, slide_in, slide_fc_params,
                           total, total - fc_params + slide_fc_params)


# ---- baselines (issue: MLP and engineered features vs learned) --------------------------------

MLP_HIDDEN = (512, 256)


@register("mlp", "Raw pixels -> FC 512 -> FC 256 -> FC 10: the lecture's MLP baseline.",
          downsamples=(), family="baseline", label="MLP", sees="raw pixels", called="the MLP",
          front="raw pixels", baseline=True)
def mlp(in_shape, num_classes, downsample):
    return add_head(OrderedDict(), in_shape, MLP_HIDDEN, num_classes)


@register("engineered", "Fixed Sobel/Laplacian front end (not trained: gray, Sobel x, Sobel y, "
          "magnitude, Laplacian), 2x2 downsampling, FC 128, FC 10.", family="baseline",
          label="Engineered front end", called="the engineered net", front="the engineered front end",
          sees="fixed engineered channels (gray, Sobel x/y, magnitude, Laplacian)", baseline=True)
def engineered(in_shape, num_classes, downsample):
    # A fixed front end cannot become strided: `stride`'s layer samples every other pixel instead.
    layers = OrderedDict(front=EngineeredFrontEnd(in_shape[0], edge="sobel"), pool1=make_downsample(downsample))
    return add_head(layers, in_shape, (128,), num_classes)


@register("engineered_scharr", "The engineered front end with Scharr instead of Sobel derivatives.",
          family="baseline", label="Engineered front end (Scharr)", called="the Scharr net",
          front="the Scharr front end", baseline=True,
          sees="fixed engineered channels (gray, Scharr x/y, magnitude, Laplacian)")
def engineered_scharr(in_shape, num_classes, downsample):
    layers = OrderedDict(front=EngineeredFrontEnd(in_shape[0], edge="scharr"), pool1=make_downsample(downsample))
    return add_head(layers, in_shape, (128,), num_classes)


@register("learned_conv", "The same head on a learned 3x3 conv with 5 output channels: what the "
          "engineered front end computes, but trained.", family="baseline", label="Learned 3x3 conv",
          called="the learned-conv net", front="the learned conv front end", baseline=True,
          sees=f"a learned 3x3 conv ({len(FRONT_CHANNELS)} channels)")
def learned_conv(in_shape, num_classes, downsample):
    # No ReLU after conv1: like the fixed front end, its channels go straight to the downsampling.
    strided = get_downsample(downsample).strides_conv
    layers = OrderedDict(conv1=nn.Conv2d(in_shape[0], len(FRONT_CHANNELS), 3, padding=1, stride=2 if strided else 1))
    if not strided:
        layers["pool1"] = make_downsample(downsample)
    return add_head(layers, in_shape, (128,), num_classes)


# ---- helpers ---------------------------------------------------------------------------------

def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """The first learned conv layer (name, module), or None (mlp, engineered front ends)."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m
    return None


def conv_layer_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_children() if isinstance(m, (nn.Conv2d, EngineeredFrontEnd))]


@torch.no_grad()
def class_score_map(model: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """For a fully convolutional net (`lenet_1x1`): scores before the final flatten, (B, K, h, w)."""
    if not isinstance(model[-1], nn.Flatten):
        raise ValueError("class_score_map needs a fully convolutional model ending in Flatten")
    return model[:-1](x)
