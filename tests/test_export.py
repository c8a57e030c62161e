"""Export as code: the plain-PyTorch code cnnviz writes for a net and its settings rebuilds every registered
net (same parameters, same initial weights under the same seed), and run in a fresh Python without cnnviz it
trains on the real Fashion-MNIST with cnnviz's first-batch loss."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from cnnviz import export
from cnnviz.config import RunConfig
from cnnviz.data import DATASETS
from cnnviz.models import build_model, count_params, get_arch, list_archs
from cnnviz.train import train

# Every net with every downsampling it takes on Fashion-MNIST (VGG16, whose layers are those of the others, with
# its default only: it builds 15M weights twice), and every net with its default on CIFAR-10.
ARCHS = [a for a in list_archs() if "engineered" not in a]
EXPORTABLE = [(a, d, "fashion-mnist") for a in ARCHS
              for d in ((get_arch(a).default_downsample,) if a == "vgg16" else get_arch(a).downsamples or (None,))]
EXPORTABLE += [(a, get_arch(a).default_downsample, "cifar10") for a in ARCHS]


def _model_from_code(cfg: RunConfig) -> nn.Module:
    """Run the exported helper-layer and model sections (nothing else) and return the `model` they build."""
    chunks = dict(export.sections(cfg, script=False))
    code = "\n\n".join(c for title, c in chunks.items() if title.startswith(("Layers", "The net")))
    namespace = {"torch": torch, "nn": nn, "F": torch.nn.functional, "SEED": cfg.seed}
    exec(compile(code, "<exported>", "exec"), namespace)  # noqa: S102 - our own generated code
    return namespace["model"]


@pytest.mark.parametrize("arch, downsample, dataset", EXPORTABLE)
def test_the_exported_model_code_rebuilds_the_registered_net_with_the_same_initial_weights(arch, downsample, dataset):
    cfg = RunConfig(arch=arch, downsample=downsample, dataset=dataset, seed=3)
    exported = _model_from_code(cfg)  # seeds with SEED itself, before its first layer
    torch.manual_seed(3)
    spec = DATASETS[dataset]
    ours = build_model(arch, spec.shape, len(spec.classes), downsample)
    assert count_params(exported) == count_params(ours)
    mine, theirs = list(ours.state_dict().values()), list(exported.state_dict().values())
    assert [t.shape for t in theirs] == [t.shape for t in mine]
    assert all(torch.equal(a, b) for a, b in zip(mine, theirs))  # same layers, same order, same seed
    x = torch.randn(2, *spec.shape)
    with torch.no_grad():
        torch.testing.assert_close(exported.eval()(x), ours.eval()(x))


def test_the_model_reads_like_the_slides():
    code = dict(export.sections(RunConfig(arch="lenet5"), script=False))["The net: lenet5, downsampling max"]
    assert "nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.ReLU()," in code
    assert "nn.MaxPool2d(2, 2)," in code and "nn.Linear(400, 120), nn.ReLU()," in code
    assert re.search(r"nn\.Flatten\(\), +# -> \(400,\)", code)  # 16 x 5 x 5, the slide's 16*5*5


def test_a_fixed_opencv_front_end_is_refused_in_one_sentence():
    with pytest.raises(export.NotExportable, match="OpenCV"):
        export.script(RunConfig(arch="engineered"))


def _first_batch_loss(cfg: RunConfig, data) -> float:
    """The oracle: cnnviz's own training loop on the same config, stopped after its first batch (fp32, CPU)."""
    cfg = cfg.resolved()
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, data.shape, len(data.classes), cfg.downsample)
    losses: list[float] = []
    result = train(model, data, cfg, callback=lambda p: losses.append(p.loss) if p.kind == "batch" else None,
                   should_stop=lambda: bool(losses), report_every=1, snapshots=False)
    assert result.reason == "stopped"
    return losses[0]


def _run(code: str, tmp_path, *args) -> str:
    """Run `code` in a fresh isolated Python (-I: no PYTHONPATH, not the checkout) in an empty folder."""
    path = tmp_path / "exported.py"
    path.write_text(code)
    done = subprocess.run([sys.executable, "-I", str(path), *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _printed(out: str) -> tuple[int, float]:
    params = int(re.search(r"^parameters: (\d+)$", out, re.M).group(1))
    loss = float(re.search(r"^epoch 1 batch 1: loss ([0-9.]+)$", out, re.M).group(1))
    return params, loss


@pytest.mark.slow
@pytest.mark.data
def test_the_exported_script_trains_without_cnnviz_with_cnnvizs_params_and_first_loss(tmp_path, fashion_mnist):
    cfg = RunConfig(arch="lenet5", seed=3, batch_size=256, lr=1e-5, optimizer="sgd", precision="fp32", device="cpu",
                    epochs=1)
    code = export.script(cfg)
    assert "cnnviz" not in "\n".join(l for l in code.splitlines() if l.startswith(("import", "from")))
    out = _run(code, tmp_path, "--epochs", "1", "--max-batches", "1", "--data", "/usr/share/datasets/fashion-mnist")
    params, loss = _printed(out)
    assert params == count_params(build_model("lenet5", (1, 28, 28))) == 61706
    assert loss == pytest.approx(_first_batch_loss(cfg, fashion_mnist), abs=1e-5)
    assert re.search(r"^epoch 1: test loss [0-9.]+, test accuracy [0-9.]+$", out, re.M)


@pytest.mark.slow
@pytest.mark.data
def test_the_exported_notebook_is_nbformat_4_and_its_cells_train_with_cnnvizs_first_loss(tmp_path, fashion_mnist):
    cfg = RunConfig(arch="downsample_compare", downsample="blurmax", precision="fp32", device="cpu", epochs=1)
    nb = json.loads(export.notebook_json(cfg))
    assert (nb["nbformat"], nb["nbformat_minor"]) == (4, 5) and nb["metadata"]["kernelspec"]["name"] == "python3"
    assert len({c["id"] for c in nb["cells"]}) == len(nb["cells"])
    for cell in nb["cells"]:
        assert set(cell) >= {"cell_type", "id", "metadata", "source"} and isinstance(cell["source"], list)
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    code = "\n\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "class BlurMaxPool(nn.Module):" in code  # a layer that is not torch's travels as its source
    code = code.replace("MAX_BATCHES = None", "MAX_BATCHES = 1")  # the settings cell's quick check
    params, loss = _printed(_run(code, tmp_path))
    assert params == count_params(build_model("downsample_compare", (1, 28, 28), downsample="blurmax"))
    assert loss == pytest.approx(_first_batch_loss(cfg, fashion_mnist), abs=1e-5)
