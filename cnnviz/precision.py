"""Numeric precision of training: fp32, or bf16 autocast (fp32 master weights) where it is faster.

A run asks for "auto", "fp32" or "bf16"; "auto" is resolved once, before training, to the precision
the run really uses, and that concrete value is what its checkpoint records (so its command reproduces
it on any machine). "auto" means:
- CUDA: bf16 where the GPU supports it (tensor cores, no loss scaling needed), else fp32.
- CPU: bf16 only where the CPU has native bf16 (AVX512-BF16 or AMX) *and* a short probe of this very
  net measured it faster; the answer is cached per machine. A busy machine with no answer cached trains
  in fp32 without probing. `CNNVIZ_AUTO_PRECISION=fp32|bf16` pins what "auto" means on a CPU. Measured on a 2-core Xeon with AMX, one
  Adam step at batch 256 (docs/benchmarks.md): conv_only on CIFAR-10 1577 -> 471 ms, vgg16 3041 ->
  1391 ms, while learned_conv got slower (11 -> 13 ms) and lenet5 gained 6 %: no size rule predicts
  it, so it is measured.
- anything else (MPS): fp32.
Evaluation always runs in fp32 on the CPU, so a record's accuracy re-evaluates the same on any CPU.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from .device import cpu_name
from .paths import data_dir
from .storage import atomic_write

PRECISIONS = ("auto", "fp32", "bf16")
SPEEDUP_NEEDED = 1.15  # below this the probe's noise on a shared 2-core machine could decide
PROBE_BATCH = 64
PROBE_REPEATS = 3


def autocast(dev: torch.device, precision: str):
    """The context a training step runs in: bf16 autocast (on `dev`'s type) or nothing."""
    if precision == "bf16" and dev.type in ("cpu", "cuda"):
        return torch.autocast(dev.type, dtype=torch.bfloat16)
    return nullcontext()


def cpu_has_native_bf16() -> bool:
    """oneDNN can run bf16 and the CPU has bf16 instructions (emulated bf16 is slower than fp32)."""
    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
    except (AttributeError, RuntimeError):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # not Linux: oneDNN's own check is all there is, and the probe still decides
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, dev: torch.device, arch: str, in_shape: tuple[int, ...], num_classes: int,
                      downsample: str | None = None) -> str:
    """The concrete precision ("fp32" or "bf16") a run asking for `precision` trains with on `dev`."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if dev.type != "cpu" or not cpu_has_native_bf16():
        return "fp32"
    pinned = os.environ.get("CNNVIZ_AUTO_PRECISION", "").strip()
    if pinned in ("fp32", "bf16"):
        return pinned  # a server (or a test suite) that wants "auto" to mean one thing everywhere
    speedup = cpu_speedup(arch, in_shape, num_classes, downsample)
    return "bf16" if speedup is not None and speedup >= SPEEDUP_NEEDED else "fp32"


def _cache_file() -> Path:
    return data_dir() / "precision-probe.json"


def _machine_key(arch, in_shape, num_classes, downsample) -> str:
    cpu = cpu_name()
    shape = "x".join(map(str, in_shape))
    return f"{cpu}|torch {torch.__version__}|{torch.get_num_threads()} threads|{arch}|{downsample}|{shape}|{num_classes}"


def cpu_speedup(arch: str, in_shape: tuple[int, ...], num_classes: int, downsample: str | None = None) -> float | None:
    """fp32 step time / bf16 step time of this net on this CPU (cached in the data folder), or None on a busy
    machine with nothing cached: a probe there would measure the load (bf16's kernels suffer most), and two
    runs of one experiment must not get different precisions from two noisy probes. Auto is then fp32."""
    key = _machine_key(arch, in_shape, num_classes, downsample)
    cache = _read_cache()
    if key in cache:
        return float(cache[key]["speedup"])
    if machine_busy():
        return None
    fp32_ms, bf16_ms = probe_step_ms(arch, in_shape, num_classes, downsample)
    speedup = round(fp32_ms / bf16_ms, 3)
    cache[key] = {"fp32_ms": round(fp32_ms, 2), "bf16_ms": round(bf16_ms, 2), "speedup": speedup}
    try:
        text = json.dumps(cache, indent=1)
        _cache_file().parent.mkdir(parents=True, exist_ok=True)
        atomic_write(_cache_file(), lambda tmp: tmp.write_text(text))
    except OSError:
        pass  # a read-only data folder: probe again next time
    return cache[key]["speedup"]


def machine_busy() -> bool:
    """More runnable work than usable CPUs (1-minute load average): step times then measure the load.
    Seen here: with a training and a test run sharing 2 cores, vgg16's bf16 step measured 2.5x slower than
    its fp32 step, while on a quiet machine it is 2.2x faster."""
    from .device import usable_cpus

    try:
        return os.getloadavg()[0] > usable_cpus() + 0.5
    except OSError:
        return False


def _read_cache() -> dict:
    try:
        cache = json.loads(_cache_file().read_text())
        return cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        return {}


def probe_step_ms(arch: str, in_shape: tuple[int, ...], num_classes: int, downsample: str | None = None,
                  batch: int = PROBE_BATCH, repeats: int = PROBE_REPEATS) -> tuple[float, float]:
    """Best-of-`repeats` milliseconds of one training step (forward, backward, fused Adam) in fp32 and in
    bf16 autocast, the two modes alternated so a change in the machine's load hits both alike."""
    from .models import build_model  # models imports nothing of this module; kept local for import cost
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model(arch, tuple(in_shape), num_classes, downsample).to(memory_format=torch.channels_last)
        x = torch.randn(batch, *in_shape).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, num_classes, (batch,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    cpu = torch.device("cpu")
    times = {"fp32": [], "bf16": []}
    for _ in range(repeats + 1):  # the first round warms oneDNN's kernel caches and is not counted
        for mode in times:
            t0 = time.perf_counter()
            with autocast(cpu, mode):
                loss = F.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            times[mode].append(time.perf_counter() - t0)
    return 1000 * min(times["fp32"][1:]), 1000 * min(times["bf16"][1:])
