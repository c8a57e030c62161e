"""What one training job really costs in memory, beside what `cnnviz.budget` estimates before it starts.

    python benchmarks/job_memory.py [--runs vgg16:cifar10:1024,conv_only:cifar10:256,...] [--json]

Each run is one real job in a fresh Python process: the dataset loaded, the model built, ONE epoch over
exactly one batch of training images (`limit_train = batch size`: one optimizer step at that batch), the
test-set evaluation after it and the checkpoint written, all through `cnnviz.runs.run_training` as the
app's jobs run it. The process's peak RSS (`resource.getrusage`'s ru_maxrss) minus its RSS just before the
job (after `import torch, cnnviz`) is the job's cost; the estimate is `cnnviz.budget.estimate(cfg)`.
The estimate must not be below the measurement (tests/test_budget.py checks that for small nets).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MB = 2**20
DEFAULT_RUNS = ("mlp:fashion-mnist:1024,lenet5:fashion-mnist:1024,downsample_compare:fashion-mnist:1024,"
                "downsample_compare:cifar10:4096,conv_only:cifar10:256,vgg16:cifar10:256")

_CHILD = r"""
import json, os, resource, sys, tempfile
sys.path.insert(0, {root!r})
import psutil, torch
from cnnviz import budget
from cnnviz.config import RunConfig
from cnnviz.device import configure_threads
from cnnviz.runs import run_training
configure_threads()
cfg = RunConfig(**json.loads({cfg!r})).resolved()
before = psutil.Process().memory_info().rss
estimate = budget.estimate(cfg)
with tempfile.TemporaryDirectory() as folder:
    path, result = run_training(cfg, folder=folder)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
print(json.dumps({{"arch": cfg.arch, "dataset": cfg.dataset, "batch_size": cfg.batch_size,
                  "precision": result.precision, "completed": result.completed, "reason": result.reason,
                  "rss_before_mb": before / 2**20, "peak_rss_mb": peak / 2**20,
                  "measured_mb": (peak - before) / 2**20, "estimate_mb": estimate.total / 2**20,
                  "estimate": estimate.parts_mb()}}))
"""


def measure(arch: str, dataset: str, batch_size: int, precision: str = "fp32", timeout: float = 1800) -> dict:
    """One job in a fresh process: its measured peak growth and the estimate, in MB."""
    cfg = json.dumps({"arch": arch, "dataset": dataset, "batch_size": batch_size, "epochs": 1,
                      "limit_train": batch_size, "precision": precision, "device": "cpu"})
    proc = subprocess.run([sys.executable, "-c", _CHILD.format(root=str(ROOT), cfg=cfg)], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        return {"arch": arch, "dataset": dataset, "batch_size": batch_size, "error": tail[:400]}
    return json.loads(lines[-1])


def parse_runs(text: str) -> list[tuple[str, str, int, str]]:
    out = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        arch, dataset, batch, *precision = item.split(":")
        out.append((arch, dataset, int(batch), precision[0] if precision else "fp32"))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", default=DEFAULT_RUNS, help="arch:dataset:batch[:precision], comma-separated")
    p.add_argument("--json", action="store_true", help="one JSON object per run")
    args = p.parse_args(argv)
    for arch, dataset, batch, precision in parse_runs(args.runs):
        row = measure(arch, dataset, batch, precision)
        if args.json:
            print(json.dumps(row), flush=True)
        elif "error" in row:
            print(f"{arch:>20} {dataset:>13} batch {batch:>5} {precision}: {row['error']}", flush=True)
        else:
            verdict = "ok" if row["estimate_mb"] >= row["measured_mb"] else "UNDER"
            print(f"{arch:>20} {dataset:>13} batch {batch:>5} {row['precision']}: measured "
                  f"{row['measured_mb']:7.0f} MB (peak RSS {row['peak_rss_mb']:.0f}), estimate "
                  f"{row['estimate_mb']:7.0f} MB {verdict}  {row['estimate']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
