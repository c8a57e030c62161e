"""Device and CPU-thread choices: what the hardware really offers, not what the host reports."""
from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" -> cuda, else mps, else cpu; an explicit choice that is not there is an error."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was asked for but no CUDA GPU is available")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("MPS was asked for but it is not available")
    return dev


def available_devices() -> list[str]:
    devs = ["auto", "cpu"]
    if torch.cuda.is_available():
        devs.append("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        devs.append("mps")
    return devs


def describe_device() -> str:
    dev = resolve_device("auto")
    if dev.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(0)}"
    if dev.type == "mps":
        return "Apple MPS"
    return f"CPU ({usable_cpus()} cores usable, {torch.get_num_threads()} torch threads)"


def cpu_name() -> str:
    """The CPU's model name ("AMD EPYC 9B14"), else what `platform` knows."""
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def usable_cpus() -> int:
    """CPUs this process may use: the affinity mask, capped by a cgroup CPU quota (containers, Cloud).

    `torch.get_num_threads()` follows the host's core count, which oversubscribes a 2-core container.
    """
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            n = min(n, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def configure_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads to `n`, else $CNNVIZ_THREADS, else the usable CPUs; returns it.

    Several trainings sharing a machine each want 1 thread: OpenMP threads that spin-wait on a
    busy core lose far more than they gain."""
    n = n or int(os.environ.get("CNNVIZ_THREADS", 0)) or usable_cpus()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
