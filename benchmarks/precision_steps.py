"""One training step of every net in fp32 and in bf16 autocast, on this CPU: the figures behind "auto".

    python benchmarks/precision_steps.py [--batch 256] [--repeats 3] [--datasets fashion-mnist,cifar10]
        [--models conv_only,vgg16] [--json]

Each step is forward, backward and a fused Adam update on random images of the dataset's shape
(channels_last, as `cnnviz.train` runs them), timed with `cnnviz.precision.probe_step_ms`: best of
`--repeats`, the two modes alternated so a change in the machine's load hits both alike. A speedup of at
least `SPEEDUP_NEEDED` is what makes "auto" choose bf16 for that net (the probe there uses a smaller batch).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout; cnnviz is not pip-installed
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from cnnviz.costs import arch_macs  # noqa: E402
from cnnviz.data import DATASETS  # noqa: E402
from cnnviz.device import configure_threads  # noqa: E402
from cnnviz.models import list_archs  # noqa: E402
from cnnviz.precision import SPEEDUP_NEEDED, cpu_has_native_bf16, probe_step_ms  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--datasets", default="fashion-mnist,cifar10")
    p.add_argument("--models", default=",".join(list_archs()))
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    threads = configure_threads()
    print(f"# CPU native bf16: {cpu_has_native_bf16()}; {threads} torch threads; torch {torch.__version__}; "
          f"load average {os.getloadavg()[0]:.2f}; batch {a.batch}; best of {a.repeats}", file=sys.stderr)
    if not a.json:
        print(f"{'model':<20}{'dataset':<15}{'M MACs/img':>11}{'fp32 ms':>9}{'bf16 ms':>9}{'speedup':>9}  auto")
    for dataset in a.datasets.split(","):
        spec = DATASETS[dataset]
        for arch in a.models.split(","):
            fp32, bf16 = probe_step_ms(arch, spec.shape, len(spec.classes), batch=a.batch, repeats=a.repeats)
            row = {"model": arch, "dataset": dataset, "macs": arch_macs(arch, spec.shape, len(spec.classes)),
                   "batch": a.batch, "fp32_ms": round(fp32, 1), "bf16_ms": round(bf16, 1),
                   "speedup": round(fp32 / bf16, 2), "auto": "bf16" if fp32 / bf16 >= SPEEDUP_NEEDED else "fp32"}
            if a.json:
                print(json.dumps(row), flush=True)
            else:
                print(f"{arch:<20}{dataset:<15}{row['macs'] / 1e6:>11.1f}{fp32:>9.1f}{bf16:>9.1f}"
                      f"{row['speedup']:>8.2f}x  {row['auto']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
