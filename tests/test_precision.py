"""Training precision (fp32 / bf16 autocast, "auto" resolved by a cached probe) and compact int8 storage."""
from __future__ import annotations

import json

import pytest
import torch

import cnnviz.precision as precision
from cnnviz.checkpoints import (INT8_MIN_VALUES, PLAIN_FORMAT_VERSION, compact_state, load_checkpoint, make_meta,
                                read_record, save_checkpoint)
from cnnviz.config import RunConfig
from cnnviz.models import build_model
from cnnviz.record import RunRecord
from cnnviz.runs import run_training

CPU = torch.device("cpu")


# ---- resolving "auto" ------------------------------------------------------------------------

def test_an_explicit_precision_is_kept_and_an_unknown_one_is_refused():
    assert precision.resolve_precision("fp32", CPU, "lenet5", (1, 28, 28), 10) == "fp32"
    assert precision.resolve_precision("bf16", CPU, "lenet5", (1, 28, 28), 10) == "bf16"
    with pytest.raises(ValueError, match="unknown precision"):
        precision.resolve_precision("fp8", CPU, "lenet5", (1, 28, 28), 10)
    with pytest.raises(ValueError, match="unknown precision"):
        RunConfig(arch="lenet5", precision="half").resolved()


@pytest.mark.parametrize("speedup, expected", [(2.0, "bf16"), (1.05, "fp32")])
def test_auto_on_a_cpu_with_native_bf16_follows_the_measured_speedup(monkeypatch, speedup, expected):
    monkeypatch.delenv("CNNVIZ_AUTO_PRECISION", raising=False)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(precision, "cpu_speedup", lambda *a, **k: speedup)
    assert precision.resolve_precision("auto", CPU, "vgg16", (3, 32, 32), 10) == expected


def test_auto_without_native_bf16_is_fp32_and_never_probes(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(precision, "cpu_speedup", lambda *a, **k: pytest.fail("probed a CPU without bf16"))
    assert precision.resolve_precision("auto", CPU, "vgg16", (3, 32, 32), 10) == "fp32"


def test_the_probe_measures_both_modes_and_caches_its_answer_per_net(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNVIZ_DATA", str(tmp_path))
    monkeypatch.delenv("CNNVIZ_AUTO_PRECISION", raising=False)
    monkeypatch.setattr(precision, "machine_busy", lambda: False)
    calls = []
    real = precision.probe_step_ms
    monkeypatch.setattr(precision, "probe_step_ms", lambda *a, **k: calls.append(a) or real(*a, batch=8, repeats=1))
    first = precision.cpu_speedup("lenet5", (1, 28, 28), 10, "max")
    again = precision.cpu_speedup("lenet5", (1, 28, 28), 10, "max")
    assert first == again > 0 and len(calls) == 1
    (entry,) = json.loads((tmp_path / "precision-probe.json").read_text()).values()
    assert entry["fp32_ms"] > 0 and entry["bf16_ms"] > 0
    assert entry["speedup"] == pytest.approx(entry["fp32_ms"] / entry["bf16_ms"], rel=0.01)


# ---- what a run records ---------------------------------------------------------------------

@pytest.mark.parametrize("asked", ["fp32", "bf16"])
def test_a_run_records_the_precision_it_trained_in_and_reads_it_back(fashion_mnist, tmp_path, asked):
    cfg = RunConfig(arch="lenet5", epochs=1, limit_train=512, batch_size=256, precision=asked)
    path, result = run_training(cfg, folder=tmp_path, data=fashion_mnist)
    record = read_record(path)
    assert result.precision == asked and record.config.precision == asked and record.row()["precision"] == asked
    assert ("precision", asked) in record.experiment  # bf16 and fp32 runs are different seed groups


def test_bf16_training_learns_like_fp32_on_the_same_start(fashion_mnist, tmp_path):
    accs = {}
    for mode in ("fp32", "bf16"):
        cfg = RunConfig(arch="lenet5", epochs=1, limit_train=8192, batch_size=128, precision=mode)
        _, result = run_training(cfg, folder=tmp_path, data=fashion_mnist)
        accs[mode] = result.history[-1]["test_acc"]
    assert min(accs.values()) > 0.6 and abs(accs["fp32"] - accs["bf16"]) < 0.03, accs


@pytest.mark.parametrize("device, used", [("cpu", "fp32"), ("cuda", "bf16"), ("cuda:0", "bf16")])
def test_a_file_from_before_precision_was_recorded_reads_as_what_it_trained_in(device, used):
    meta = {"arch": "lenet5", "downsample": "max", "dataset": {"name": "fashion-mnist"},
            "train": {"epochs": 1, "device": device}, "history": []}
    assert RunRecord.from_meta(meta).config.precision == used


# ---- int8 storage ------------------------------------------------------------------------------

def test_compact_storage_quantizes_large_weights_per_output_channel_and_restores_them(tmp_path):
    torch.manual_seed(0)
    model = build_model("conv_only", (3, 32, 32), 10).eval()
    meta = make_meta(arch="conv_only", downsample=None, dataset={"name": "cifar10", "source": "test", "lossy": True},
                     in_shape=(3, 32, 32), num_classes=10, train={"seed": 0}, history=[], complete=True,
                     reason="completed", model=model)
    path = save_checkpoint(tmp_path / "c.pt", meta, model, half=True)
    raw = torch.load(path, weights_only=True)
    big = [k for k, v in model.state_dict().items() if v.numel() >= INT8_MIN_VALUES and v.dim() >= 2]
    assert big and all(raw["state_dict"][k].dtype == torch.int8 for k in big)
    assert raw["weights_dtype"] == "float16+int8" and raw["format_version"] == 2
    restored = load_checkpoint(path).model.state_dict()
    for k, w in model.state_dict().items():
        row_max = w.reshape(len(w), -1).abs().amax(1).reshape(-1, *([1] * (w.dim() - 1))) if w.dim() >= 2 else w.abs().max()
        bound = row_max / 254 + 1e-6 if k in big else w.abs().max() * 2**-10 + 1e-6  # int8 half step, fp16 ulp
        assert ((restored[k] - w).abs() <= bound).all(), k
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(load_checkpoint(path).model(x), model(x), atol=2e-2, rtol=2e-2)
    assert "weight_scales" not in load_checkpoint(path).meta


def test_small_nets_stay_plain_float16_and_readable_by_older_cnnviz():
    torch.manual_seed(0)
    state, scales = compact_state(build_model("lenet5", (1, 28, 28), 10).state_dict())
    assert not scales and all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    assert PLAIN_FORMAT_VERSION == 1


def test_a_busy_machine_with_nothing_cached_does_not_probe_and_trains_in_fp32(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNVIZ_DATA", str(tmp_path))
    monkeypatch.delenv("CNNVIZ_AUTO_PRECISION", raising=False)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(precision, "machine_busy", lambda: True)
    monkeypatch.setattr(precision, "probe_step_ms", lambda *a, **k: pytest.fail("probed a busy machine"))
    assert precision.cpu_speedup("lenet5", (1, 28, 28), 10, "max") is None
    assert precision.resolve_precision("auto", CPU, "lenet5", (1, 28, 28), 10, "max") == "fp32"
    assert not (tmp_path / "precision-probe.json").exists()


def test_a_cached_answer_holds_on_a_busy_machine_and_the_setting_pins_auto(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNVIZ_DATA", str(tmp_path))
    monkeypatch.delenv("CNNVIZ_AUTO_PRECISION", raising=False)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(precision, "machine_busy", lambda: False)
    monkeypatch.setattr(precision, "probe_step_ms", lambda *a, **k: (30.0, 10.0))
    assert precision.resolve_precision("auto", CPU, "lenet5", (1, 28, 28), 10, "max") == "bf16"
    monkeypatch.setattr(precision, "machine_busy", lambda: True)  # later, under load: the same answer
    assert precision.resolve_precision("auto", CPU, "lenet5", (1, 28, 28), 10, "max") == "bf16"
    monkeypatch.setenv("CNNVIZ_AUTO_PRECISION", "fp32")
    assert precision.resolve_precision("auto", CPU, "lenet5", (1, 28, 28), 10, "max") == "fp32"
    assert precision.resolve_precision("bf16", CPU, "lenet5", (1, 28, 28), 10, "max") == "bf16"  # explicit wins
