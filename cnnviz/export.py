"""Export as code: a net and its training settings as plain PyTorch that runs without cnnviz.

The model is written from the built `nn.Sequential` itself (the registry's builder, walked layer by layer), in
the slides' style: `nn.Sequential(nn.Conv2d(1, 32, kernel_size=5), nn.ReLU(), ...)` with each line's output
shape as a comment. A layer that is not part of torch (cnnviz's `Interpolate`, `BlurMaxPool`, ...) is written
as its class's own source, read with `inspect`, so a new registered method is exported with no edit here. The
training loop does what cnnviz's does, in the lecture's words (DataLoader, CrossEntropyLoss, Adam): the same
seed gives the same initial weights (layers created in the same order after `torch.manual_seed`) and the same
first batch (one `randperm` per epoch from a generator seeded the same way), so the exported code's first loss
is cnnviz's.
"""
from __future__ import annotations

import inspect
import json
import textwrap

import torch
import torch.nn as nn

from .config import RunConfig
from .data import DATASETS
from .models import build_model, count_params

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


class NotExportable(ValueError):
    """A net or setting the exported code cannot rebuild; the message is one sentence for the user."""


# ---- the model -------------------------------------------------------------------------------------

def _one(v):
    """(5, 5) -> 5: the slides write a square kernel as one number."""
    return v[0] if isinstance(v, tuple) and len(set(v)) == 1 else v


def layer_code(m: nn.Module) -> str:
    """One layer as the expression that builds it (the defaults left out, as a person writes it)."""
    if isinstance(m, nn.Conv2d):
        args = [str(m.in_channels), str(m.out_channels), f"kernel_size={_one(m.kernel_size)}"]
        for name, default in (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1)):
            value = _one(getattr(m, name))
            if value != default:
                args.append(f"{name}={value!r}")
        if m.bias is None:
            args.append("bias=False")
        if m.padding_mode != "zeros":
            args.append(f"padding_mode={m.padding_mode!r}")
        return f"nn.Conv2d({', '.join(args)})"
    if isinstance(m, nn.Linear):
        return f"nn.Linear({m.in_features}, {m.out_features}{'' if m.bias is not None else ', bias=False'})"
    if type(m) in (nn.MaxPool2d, nn.AvgPool2d) and m.padding == 0 and not m.ceil_mode and \
            getattr(m, "dilation", 1) == 1 and getattr(m, "count_include_pad", True) and \
            not getattr(m, "divisor_override", None):
        return f"nn.{type(m).__name__}({m.kernel_size}, {m.stride})"
    if type(m) in (nn.ReLU, nn.Flatten) and m.extra_repr() in ("", "start_dim=1, end_dim=-1"):
        return f"nn.{type(m).__name__}()"
    prefix = "nn." if type(m).__module__.startswith("torch.nn") else ""
    return f"{prefix}{type(m).__name__}({m.extra_repr()})"  # extra_repr lists the constructor's arguments


def helper_classes(model: nn.Module) -> list[type]:
    """The layer classes that are not torch's, in order of first use: their source goes into the code."""
    seen: list[type] = []
    for m in model.children():
        cls = type(m)
        if not cls.__module__.startswith("torch.") and cls not in seen:
            seen.append(cls)
    return seen


def _check_exportable(model: nn.Module) -> None:
    for cls in helper_classes(model):
        source = inspect.getsource(cls)
        if "cv2" in source or "engineered_kernels" in source:
            raise NotExportable(f"{cls.__name__} is built from OpenCV's kernels, which the plain-PyTorch export "
                                "does not rebuild; export a net made of learned layers")


def _shape(t: torch.Tensor) -> str:
    dims = tuple(t.shape[1:])
    return f"({dims[0]},)" if len(dims) == 1 else str(dims)


@torch.no_grad()
def model_code(model: nn.Sequential, in_shape: tuple[int, int, int]) -> str:
    """`model = nn.Sequential(...)`: one line per layer (a ReLU beside the layer before it), output shapes as
    comments, measured by a forward pass on zeros."""
    lines, x, children = [], torch.zeros(1, *in_shape), list(model.children())
    i = 0
    while i < len(children):
        group = [children[i]]
        if i + 1 < len(children) and isinstance(children[i + 1], nn.ReLU):
            group.append(children[i + 1])
        for m in group:
            x = m(x)
        lines.append((", ".join(layer_code(m) for m in group) + ",", f"# -> {_shape(x)}"))
        i += len(group)
    width = max(len(code) for code, _ in lines)
    body = "\n".join(f"    {code.ljust(width)}  {comment}" for code, comment in lines)
    return f"model = nn.Sequential(  # input {tuple(in_shape)}\n{body}\n)"


# ---- the script ------------------------------------------------------------------------------------

IMPORTS = """\
import gzip
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import DataLoader, RandomSampler, TensorDataset"""

_FASHION_MNIST = '''\
def load_split(train: bool):
    """Fashion-MNIST as uint8 images (N, 1, 28, 28) and int64 labels (N,): the IDX files in
    DATA_DIR (gzipped or not), else torchvision's download into ./data."""
    stem = "train" if train else "t10k"
    kinds = ("images-idx3", "labels-idx1")
    found = [next(Path(DATA_DIR).glob(f"{stem}-{kind}-ubyte*"), None) for kind in kinds]
    if None in found:
        from torchvision.datasets import FashionMNIST
        ds = FashionMNIST("data", train=train, download=True)
        return ds.data[:, None].clone(), ds.targets.clone()
    images, labels = (read_idx(p) for p in found)
    return torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.astype(np.int64))


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (big-endian dimensions, then uint8 values) as a numpy array."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(raw[3])]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * len(dims)).reshape(dims)'''

_CIFAR10 = '''\
def load_split(train: bool):
    """CIFAR-10 as uint8 images (N, 3, 32, 32) and int64 labels (N,), downloaded by torchvision
    into DATA_DIR."""
    from torchvision.datasets import CIFAR10
    ds = CIFAR10(DATA_DIR, train=train, download=True)
    return torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets)'''

_DATA = '''\
train_x, train_y = load_split(train=True)
test_x, test_y = load_split(train=False)
if LIMIT_TRAIN:
    train_x, train_y = train_x[:LIMIT_TRAIN], train_y[:LIMIT_TRAIN]
MEAN = torch.tensor({mean}).view(1, -1, 1, 1)
STD = torch.tensor({std}).view(1, -1, 1, 1)


def normalize(x_uint8):
    """uint8 (B, C, H, W) -> float32 in [0, 1], then (x - mean) / std: ToTensor + Normalize."""
    return (x_uint8.float() / 255 - MEAN) / STD


# The generator sits on the sampler: one randperm per epoch from a generator seeded with SEED.
# (DataLoader(generator=...) would also draw its workers' seed from it, and shuffle differently.)
train_loader = DataLoader(TensorDataset(train_x, train_y), batch_size=BATCH_SIZE,
                          sampler=RandomSampler(train_x, generator=torch.Generator().manual_seed(SEED)),
                          drop_last=len(train_y) >= BATCH_SIZE)
test_loader = DataLoader(TensorDataset(test_x, test_y), batch_size=1024)'''

_OPTIMIZERS = {"adam": "optim.Adam(model.parameters(), lr=LR)",
               "adamw": "optim.AdamW(model.parameters(), lr=LR)",
               "sgd": "optim.SGD(model.parameters(), lr=LR, momentum=0.9)"}

_TRAIN = '''\
device = "cuda" if torch.cuda.is_available() else "cpu"
model = model.to(device)
criterion = nn.CrossEntropyLoss()
optimizer = {optimizer}


@torch.no_grad()
def evaluate():
    model.eval()
    correct = total_loss = 0.0
    for x, y in test_loader:
        x, y = normalize(x).to(device), y.to(device)
        logits = model(x)
        total_loss += criterion(logits, y).item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
    return total_loss / len(test_y), correct / len(test_y)


for epoch in range(1, EPOCHS + 1):
    model.train()
    for batch, (x, y) in enumerate(train_loader, start=1):
        x, y = normalize(x).to(device), y.to(device)
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if batch == 1 or batch % 20 == 0:
            print(f"epoch {{epoch}} batch {{batch}}: loss {{loss.item():.8f}}")
        if MAX_BATCHES and batch >= MAX_BATCHES:
            break
    test_loss, test_acc = evaluate()
    print(f"epoch {{epoch}}: test loss {{test_loss:.4f}}, test accuracy {{test_acc:.4f}}")'''


def _settings(cfg: RunConfig, *, script: bool) -> str:
    """The training settings as constants; the script lets the command line change the epochs, the batches per
    epoch (a quick check) and the data folder."""
    data_dir = DEBIAN_FASHION_MNIST if cfg.dataset == "fashion-mnist" else "data"
    lines = [f"SEED = {cfg.seed}", f"BATCH_SIZE = {cfg.batch_size}", f"LR = {cfg.lr!r}",
             f"LIMIT_TRAIN = {cfg.limit_train!r}  # None: every training image"]
    if script:
        return "\n".join(lines + [
            'parser = argparse.ArgumentParser(description="Train the net exported from cnnviz.")',
            f'parser.add_argument("--epochs", type=int, default={cfg.epochs})',
            'parser.add_argument("--max-batches", type=int, default=None, help="stop each epoch after N batches")',
            f'parser.add_argument("--data", default={data_dir!r}, help="the dataset\'s folder")',
            "args = parser.parse_args()",
            "EPOCHS, MAX_BATCHES, DATA_DIR = args.epochs, args.max_batches, args.data"])
    return "\n".join(lines + [f"EPOCHS = {cfg.epochs}", "MAX_BATCHES = None  # e.g. 1 for a quick check",
                              f"DATA_DIR = {data_dir!r}"])


def sections(cfg: RunConfig, *, script: bool = True) -> list[tuple[str, str]]:
    """(heading, code) in order: the script is their code joined, the notebook one cell each."""
    cfg = cfg.resolved()
    if cfg.dataset not in DATASETS:
        raise NotExportable(f"the export reads Fashion-MNIST or CIFAR-10, not the image folder {cfg.dataset!r}")
    spec = DATASETS[cfg.dataset]
    model = build_model(cfg.arch, spec.shape, len(spec.classes), cfg.downsample)
    _check_exportable(model)
    helpers = "\n\n\n".join(textwrap.dedent(inspect.getsource(cls)).rstrip() for cls in helper_classes(model))
    build = (f"torch.manual_seed(SEED)  # the initial weights: layers created in this order after this seed\n"
             f"{model_code(model, spec.shape)}\n"
             'print(f"parameters: {sum(p.numel() for p in model.parameters())}")')
    data = (_FASHION_MNIST if cfg.dataset == "fashion-mnist" else _CIFAR10) + "\n\n\n" + \
        _DATA.format(mean=list(spec.mean), std=list(spec.std))
    out = [("Imports", ("import argparse\n" if script else "") + IMPORTS),
           ("Training settings (the run's `RunConfig`)", _settings(cfg, script=script))]
    if helpers:
        out.append(("Layers that are not part of torch.nn (their source, from cnnviz)", helpers))
    out += [(f"The net: {cfg.arch}" + (f", downsampling {cfg.downsample}" if cfg.downsample else ""), build),
            (f"{spec.label or spec.name}: the images as uint8 tensors, normalised per batch", data),
            ("Loss, optimizer and the training loop", _TRAIN.format(optimizer=_OPTIMIZERS[cfg.optimizer]))]
    return out


def script(cfg: RunConfig) -> str:
    """The whole run as one Python file: `python file.py [--epochs N] [--max-batches N] [--data FOLDER]`."""
    note = ("" if cfg.precision != "bf16" else "\n\nThis code trains in fp32; the cnnviz run trained in bf16 "
            "(autocast), so their curves differ a little after the first step.")
    head = f'"""{cfg.resolved().name}, exported from cnnviz: plain PyTorch, no cnnviz needed.{note}"""'
    body = "\n\n\n".join(f"# ---- {title} ----\n{code}" for title, code in sections(cfg, script=True))
    return f"{head}\n{body}\n"


def notebook(cfg: RunConfig) -> dict:
    """The same run as a Jupyter notebook (nbformat 4.5, built as plain JSON): a markdown and a code cell per
    section."""
    cells = [_cell("markdown", f"# {cfg.resolved().name}, exported from cnnviz\n\nPlain PyTorch, no cnnviz "
                               f"needed. {count_params(_built(cfg)):,} parameters.")]
    for i, (title, code) in enumerate(sections(cfg, script=False)):
        cells += [_cell("markdown", f"## {title}", f"md{i}"), _cell("code", code, f"code{i}")]
    return {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                        "name": "python3"},
                                         "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def notebook_json(cfg: RunConfig) -> str:
    return json.dumps(notebook(cfg), indent=1)


def _built(cfg: RunConfig) -> nn.Module:
    spec = DATASETS[cfg.dataset]
    cfg = cfg.resolved()
    return build_model(cfg.arch, spec.shape, len(spec.classes), cfg.downsample)


def _cell(kind: str, text: str, cell_id: str = "title") -> dict:
    source = text.splitlines(keepends=True)
    cell = {"cell_type": kind, "id": cell_id, "metadata": {}, "source": source}
    return {**cell, "execution_count": None, "outputs": []} if kind == "code" else cell
