"""cnnviz's training loop against the lecture's, side by side on one machine.

    python benchmarks/train_speed.py [--models lenet5,downsample_compare,conv_only] [--epochs 3]
        [--device auto|cpu|cuda] [--batch-size 1024] [--num-workers N] [--limit-train N] [--json]
        [--precisions fp32,bf16] [--no-lecture]
    python benchmarks/train_speed.py --models vgg16 --dataset cifar10 --no-lecture --epochs 2 --batch-size 256
    python benchmarks/train_speed.py --profile      # where the time goes (torch.profiler), no timing

Both loops get the same model (built after `torch.manual_seed(seed)`), the same data, batch size and
optimiser (Adam, lr 1e-3). Each (model, loop) runs in a fresh Python process, so one loop's memory,
allocator state and worker processes never colour the other's figures.

- lecture: the lecture's data pipeline as written (torchvision `FashionMNIST`, `Compose([ToTensor(),
  Normalize((0.5,), (0.5,))])`, `DataLoader(batch_size=1024, num_workers=..., shuffle=True,
  drop_last=True)`) and the standard PyTorch loop the lecture's setup is written for (the slides show
  the setup, not the loop body): per-batch `.to(device)`, `zero_grad`, forward, `CrossEntropyLoss`,
  `backward`, `step`, `loss.item()` and the accuracy count read back every batch; a test loop in the
  same style under `torch.no_grad()`. torch's default thread count, no autocast, no channels_last.
- cnnviz: `cnnviz.train.train` on `cnnviz.data.load_dataset(...)`, once per precision of `--precisions`
  (fp32, and bf16 autocast with fp32 master weights; see cnnviz/precision.py). `--no-lecture` times cnnviz
  alone (the lecture loop needs torchvision's own CIFAR-10 files, which the JPEG copy is not): the bf16 /
  fp32 ratio is then the figure.

Seconds per epoch are the median of the epochs after the first (the first pays for warm-up and, in
the lecture loop, nothing different: its workers restart every epoch anyway); evaluation is timed
separately. Peak memory is the process's resident memory above its level after `import torch`
(plus the USS of DataLoader workers), or `torch.cuda.max_memory_allocated` on CUDA.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout; cnnviz is not pip-installed
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import torch  # noqa: E402

from cnnviz.config import RunConfig  # noqa: E402
from cnnviz.data import DATASETS, DEBIAN_FASHION_MNIST, load_dataset  # noqa: E402
from cnnviz.device import resolve_device, usable_cpus  # noqa: E402
from cnnviz.models import build_model, list_archs  # noqa: E402
from cnnviz.paths import data_dir  # noqa: E402

DEFAULT_MODELS = ("lenet5", "downsample_compare", "conv_only")
LR = 1e-3
# Targets from the issue: printed beside the result, never asserted (they depend on the machine).
SPEEDUP_TARGETS = {"cpu": {"lenet5": 2.0, "conv_only": 2.0}, "cuda": {"lenet5": 10.0}}
BF16_TARGETS = {"cpu": {"vgg16": 2.0}}  # bf16 images/s over fp32: a VGG16 epoch at most half as long
ACC_TOLERANCE = 0.01  # test accuracy within 1 point of the lecture loop's
MB = 2**20
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")


# ---- the machine ---------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict:
    info = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "host": platform.node(), "cpu": cpu_model(), "cpus_usable": usable_cpus(),
            "cpus_host": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "torch_default_threads": torch.get_num_threads(), "device": str(device),
            "load_average": [round(x, 2) for x in os.getloadavg()]}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


# ---- memory ------------------------------------------------------------------------------

class PeakMemory:
    """Peak resident memory above the level at `__enter__`: this process plus its workers' USS.

    A DataLoader worker is a fork: its RSS counts pages it shares with the parent (the dataset), so a
    worker adds only its unique set size (USS). The process's own high-water mark (`ru_maxrss`) is
    folded in so that a spike between two samples is not missed.
    """

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.proc = psutil.Process()
        self.peak = self.workers_peak = 0
        self._stop = threading.Event()

    def __enter__(self):
        self.baseline = self.proc.memory_info().rss
        self.peak = self.baseline
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        workers = 0
        for child in self.proc.children(recursive=True):
            try:
                workers += child.memory_full_info().uss
            except (psutil.Error, OSError):
                pass  # a worker that exits between listing and reading
        self.workers_peak = max(self.workers_peak, workers)
        self.peak = max(self.peak, self.proc.memory_info().rss + workers)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()
        import resource

        own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        self.peak = max(self.peak, own_peak)

    @property
    def delta_mb(self) -> float:
        return (self.peak - self.baseline) / MB


# ---- the lecture's data, in torchvision's layout ------------------------------------------

def lecture_root(requested: str | None, dataset: str) -> Path:
    """A root that torchvision's dataset class accepts with `download=False` (the machine is offline).

    torchvision looks for the *uncompressed* IDX files in ROOT/FashionMNIST/raw/ (it only unpacks the
    .gz itself after a download), so Debian's .gz files are unpacked once into a cache folder.
    """
    if dataset == "cifar10":
        for root in [Path(requested)] if requested else [data_dir()]:
            if (root / "cifar-10-batches-py" / "data_batch_1").is_file():
                return root
        raise SystemExit("the lecture loop on cifar10 needs torchvision's CIFAR-10 files "
                         "(ROOT/cifar-10-batches-py/); pass --lecture-root ROOT, or use fashion-mnist")
    candidates = [Path(requested)] if requested else [data_dir()]
    for root in candidates:
        if all((root / "FashionMNIST" / "raw" / f).is_file() for f in IDX_FILES):
            return root
    root = Path(requested) if requested else Path(
        os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cnnviz" / "bench-torchvision"
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for f in IDX_FILES:
        src = DEBIAN_FASHION_MNIST / f"{f}.gz"
        if not (raw / f).is_file():
            if not src.is_file():
                raise SystemExit(f"Fashion-MNIST not found for the lecture loop: no {raw / f} and no {src} "
                                 "(apt-get install dataset-fashion-mnist)")
            tmp = raw / f"{f}.tmp{os.getpid()}"
            with gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout)
            os.replace(tmp, raw / f)
    return root


def lecture_loaders(dataset: str, root: Path, batch_size: int, num_workers: int, limit_train: int | None,
                    limit_test: int | None = None):
    """The lecture's datasets and DataLoaders, as the slides write them (download=False: offline)."""
    from torch.utils.data import DataLoader, Subset
    from torchvision.datasets import CIFAR10, FashionMNIST
    from torchvision.transforms import Compose, Normalize, ToTensor

    c = DATASETS[dataset].shape[0]
    transform = Compose([ToTensor(), Normalize((0.5,) * c, (0.5,) * c)])
    cls = FashionMNIST if dataset == "fashion-mnist" else CIFAR10
    trainset = cls(root=str(root), train=True, download=False, transform=transform)
    testset = cls(root=str(root), train=False, download=False, transform=transform)
    if limit_train:
        trainset = Subset(trainset, range(min(limit_train, len(trainset))))  # the first N, like cnnviz
    if limit_test:
        testset = Subset(testset, range(min(limit_test, len(testset))))
    trainloader = DataLoader(trainset, batch_size=batch_size, num_workers=num_workers, shuffle=True,
                             drop_last=len(trainset) >= batch_size)
    testloader = DataLoader(testset, batch_size=batch_size, num_workers=num_workers, shuffle=False)
    return trainloader, testloader


def lecture_train_epoch(model, trainloader, criterion, optimizer, device, on_batch=None):
    """One epoch of the standard PyTorch loop: (seconds, images, mean loss, accuracy)."""
    model.train()
    running_loss, correct, total, batches = 0.0, 0, 0, 0
    t0 = time.perf_counter()
    for images, labels in trainloader:
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad()
        outputs = model(images)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
        _, predicted = torch.max(outputs.data, 1)
        total += labels.size(0)
        correct += (predicted == labels).sum().item()
        batches += 1
        if on_batch is not None and on_batch():
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, total, running_loss / max(1, batches), correct / max(1, total)


def lecture_test(model, testloader, device) -> float:
    model.eval()
    correct, total = 0, 0
    with torch.no_grad():
        for images, labels in testloader:
            images, labels = images.to(device), labels.to(device)
            outputs = model(images)
            _, predicted = torch.max(outputs.data, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    return correct / max(1, total)


# ---- one measurement (runs in its own process) --------------------------------------------

def run_lecture(args, device) -> dict:
    t0 = time.perf_counter()
    trainloader, testloader = lecture_loaders(args.dataset, lecture_root(args.lecture_root, args.dataset),
                                              args.batch_size, args.num_workers, args.limit_train,
                                              args.limit_test)
    torch.manual_seed(args.seed)
    model = build_model(args.model, DATASETS[args.dataset].shape).to(device)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    setup = time.perf_counter() - t0
    epochs, acc, eval_s, loss = [], 0.0, 0.0, float("nan")
    for _ in range(args.epochs):
        seconds, images, loss, _train_acc = lecture_train_epoch(model, trainloader, criterion, optimizer,
                                                                 device)
        epochs.append((seconds, images))
        t1 = time.perf_counter()
        acc = lecture_test(model, testloader, device)
        eval_s += time.perf_counter() - t1
    return {"setup_seconds": setup, "epochs": epochs, "test_acc": acc, "train_loss": loss,
            "eval_seconds": eval_s, "threads": torch.get_num_threads(), "num_workers": args.num_workers}


def run_cnnviz(args, device) -> dict:
    from cnnviz.train import train

    t0 = time.perf_counter()
    data = load_dataset(args.dataset, download=False)
    if args.limit_test:  # train() evaluates the whole test split: hand it a shorter one
        data = dataclasses.replace(data, test_x=data.test_x[:args.limit_test], test_y=data.test_y[:args.limit_test])
    torch.manual_seed(args.seed)
    model = build_model(args.model, data.shape)
    setup = time.perf_counter() - t0
    cfg = RunConfig(arch=args.model, dataset=args.dataset, epochs=args.epochs, lr=LR, batch_size=args.batch_size,
                    device=str(device), seed=args.seed, limit_train=args.limit_train, precision=args.precision)
    result = train(model, data, cfg)
    if not result.completed:
        raise RuntimeError(f"cnnviz.train did not complete: {result.reason}")
    h = result.history
    return {"setup_seconds": setup,
            "epochs": [(r["seconds"], round(r["images_per_second"] * r["seconds"])) for r in h],
            "test_acc": h[-1]["test_acc"], "train_loss": h[-1]["train_loss"],
            "eval_seconds": sum(r["eval_seconds"] for r in h), "threads": torch.get_num_threads(),
            "num_workers": 0, "precision": result.precision}


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the lecture's DataLoader workers)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(args) -> dict:
    """Train one (model, loop) and return its row; called in a fresh process by `--_worker`."""
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0, c0 = time.perf_counter(), cpu_seconds()
    with PeakMemory() as mem:
        out = (run_lecture if args._worker == "lecture" else run_cnnviz)(args, device)
    total, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    seconds = [s for s, _ in out["epochs"]]
    timed = seconds[1:] or seconds  # the first epoch pays for warm-up
    per_epoch = statistics.median(timed)
    images = out["epochs"][-1][1]
    row = {"model": args.model, "loop": args._worker, "precision": out.get("precision", "fp32"),
           "dataset": args.dataset, "device": str(device),
           "epochs": args.epochs, "batch_size": args.batch_size, "limit_train": args.limit_train,
           "limit_test": args.limit_test,
           "seed": args.seed, "threads": out["threads"], "num_workers": out["num_workers"],
           "seconds_per_epoch": per_epoch, "epoch_seconds": seconds, "images_per_epoch": images,
           "images_per_second": images / per_epoch, "test_acc": out["test_acc"],
           "train_loss": out["train_loss"], "setup_seconds": out["setup_seconds"],
           "eval_seconds": out["eval_seconds"], "total_seconds": total, "cpu_seconds": cpu,
           "peak_rss_mb": mem.delta_mb, "workers_uss_peak_mb": mem.workers_peak / MB}
    if device.type == "cuda":
        row["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / MB
    row["peak_mem_mb"] = row.get("peak_cuda_mb", row["peak_rss_mb"])
    row["mem_kind"] = "cuda max_memory_allocated" if device.type == "cuda" else "RSS above baseline (+ workers' USS)"
    return row


def measure_in_subprocess(args, model: str, loop: str, precision: str = "fp32") -> dict:
    cmd = [sys.executable, __file__, "--_worker", loop, "--precision", precision, "--models", model, "--dataset", args.dataset,
           "--epochs", str(args.epochs), "--device", args.device, "--batch-size", str(args.batch_size),
           "--num-workers", str(args.num_workers), "--seed", str(args.seed)]
    if args.limit_train:
        cmd += ["--limit-train", str(args.limit_train)]
    if args.limit_test:
        cmd += ["--limit-test", str(args.limit_test)]
    if args.lecture_root:
        cmd += ["--lecture-root", args.lecture_root]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        raise RuntimeError(f"{loop} loop on {model} failed (exit {proc.returncode}):\n  " + "\n  ".join(tail))
    return json.loads(lines[-1])


# ---- where the time goes -------------------------------------------------------------------

PROFILE_WAIT, PROFILE_WARMUP, PROFILE_ACTIVE = 1, 1, 3


def _profiler(device):
    from torch.profiler import ProfilerActivity, profile, schedule

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    return profile(activities=acts, schedule=schedule(wait=PROFILE_WAIT, warmup=PROFILE_WARMUP,
                                                      active=PROFILE_ACTIVE))


def _tables(prof, device, rows: int) -> str:
    """Top ops by host time (where a CPU run, or a GPU run's Python side, spends it), and on CUDA by
    GPU time too."""
    out = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
    if device.type == "cuda":
        out += "\n" + prof.key_averages().table(sort_by="self_device_time_total", row_limit=rows)
    return out


def profile_model(args, model_name: str, device, rows: int = 15) -> None:
    """torch.profiler tables for a few batches of both loops, and the lecture's data pipeline apart."""
    from torch.profiler import ProfilerActivity, profile

    from cnnviz.train import train

    steps = PROFILE_WAIT + PROFILE_WARMUP + PROFILE_ACTIVE
    shape = DATASETS[args.dataset].shape
    root = lecture_root(args.lecture_root, args.dataset)
    limit = args.batch_size * (steps + 1)

    print(f"\n=== {model_name}: lecture loop, {PROFILE_ACTIVE} batches of {args.batch_size} profiled "
          f"(num_workers={args.num_workers}, {torch.get_num_threads()} threads) ===")
    trainloader, _ = lecture_loaders(args.dataset, root, args.batch_size, args.num_workers, limit)
    torch.manual_seed(args.seed)
    model = build_model(model_name, shape).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    with _profiler(device) as prof:
        def step():
            prof.step()
            return prof.step_num >= steps
        lecture_train_epoch(model, trainloader, torch.nn.CrossEntropyLoss(), opt, device, on_batch=step)
    print(_tables(prof, device, rows))

    # The data pipeline alone. In the main process (num_workers=0) its per-sample ops are visible and
    # its time is its CPU cost; with workers that cost is the same CPU work moved to other processes
    # (on a machine with few cores they compete with the model's threads), plus a start-up per epoch.
    loader, _ = lecture_loaders(args.dataset, root, args.batch_size, 0, limit)
    it = iter(loader)
    next(it)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        batches = [b for _, b in zip(range(steps - 1), it)]
        per_batch = (time.perf_counter() - t0) / len(batches)
    print(f"lecture DataLoader alone, num_workers=0: {per_batch * 1e3:.1f} ms per batch of {args.batch_size} "
          f"= {per_batch / args.batch_size * 1e6:.0f} us of CPU per image (ToTensor + Normalize + collate)")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))
    if args.num_workers:
        loader, _ = lecture_loaders(args.dataset, root, args.batch_size, args.num_workers, limit)
        t0 = time.perf_counter()
        next(iter(loader))
        print(f"lecture DataLoader start-up with {args.num_workers} workers (to the first batch): "
              f"{time.perf_counter() - t0:.2f} s, paid every epoch and again for the test loader")
    t0 = time.perf_counter()
    for images, labels in batches:
        images, labels = images.to(device), labels.to(device)
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        opt.step()
        loss.item()
    print(f"lecture model step alone (batches already in memory): "
          f"{(time.perf_counter() - t0) / len(batches) * 1e3:.1f} ms per batch")

    data = load_dataset(args.dataset, download=False)
    torch.manual_seed(args.seed)
    model = build_model(model_name, data.shape)
    with _profiler(device) as prof:
        def stop():
            # train() calls should_stop() after every batch without a host sync: a free step hook.
            prof.step()
            return prof.step_num >= steps
        train(model, data, RunConfig(arch=model_name, epochs=1, lr=LR, batch_size=args.batch_size,
                                     device=str(device), seed=args.seed, limit_train=limit), should_stop=stop)
    print(f"\n=== {model_name}: cnnviz.train, {PROFILE_ACTIVE} batches of {args.batch_size} profiled "
          f"({torch.get_num_threads()} threads) ===")
    print(_tables(prof, device, rows))


# ---- the report ----------------------------------------------------------------------------

def ratios(rows: list[dict], device: torch.device) -> dict:
    """Per model: each cnnviz precision against the lecture loop (speed, accuracy, memory), and bf16 against
    fp32 (speed, accuracy), with the targets beside them."""
    out = {}
    targets, bf16_targets = SPEEDUP_TARGETS.get(device.type, {}), BF16_TARGETS.get(device.type, {})
    for model in dict.fromkeys(r["model"] for r in rows):
        lec = next((r for r in rows if r["model"] == model and r["loop"] == "lecture"), None)
        mine = {r["precision"]: r for r in rows if r["model"] == model and r["loop"] == "cnnviz"}
        entry = {}
        for precision, cnv in mine.items():
            if lec is None:
                continue
            speedup, diff, target = cnv["images_per_second"] / lec["images_per_second"], cnv["test_acc"] - lec["test_acc"], targets.get(model)
            entry[precision] = {"speedup": speedup, "acc_diff_points": 100 * diff, "target_speedup": target,
                                "speedup_met": None if target is None else speedup >= target,
                                "acc_within_1_point": abs(diff) <= ACC_TOLERANCE,
                                "memory_ratio": (cnv["peak_mem_mb"] / lec["peak_mem_mb"]) if lec["peak_mem_mb"] > 0 else None}
        if {"fp32", "bf16"} <= set(mine):
            speedup = mine["bf16"]["images_per_second"] / mine["fp32"]["images_per_second"]
            target = bf16_targets.get(model)
            entry["bf16_over_fp32"] = {"speedup": speedup, "target_speedup": target,
                                       "speedup_met": None if target is None else speedup >= target,
                                       "acc_diff_points": 100 * (mine["bf16"]["test_acc"] - mine["fp32"]["test_acc"])}
        if entry:
            out[model] = entry
    return out


def print_table(rows: list[dict], summary: dict, machine: dict) -> None:
    print(f"\nmachine: {machine['cpu']}, {machine['cpus_usable']} of {machine['cpus_host']} CPUs usable, "
          f"torch {machine['torch']}, device {machine['device']}"
          + (f" ({machine['gpu']})" if "gpu" in machine else "")
          + f", load average {machine['load_average']} at start, {machine['date']}")
    head = (f"{'model':<20}{'loop':<9}{'prec':>5}{'thr':>4}{'wrk':>4}{'s/epoch':>9}{'images/s':>11}{'test acc':>10}"
            f"{'peak MB':>9}{'total s':>9}{'CPU s':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['model']:<20}{r['loop']:<9}{r['precision']:>5}{r['threads']:>4}{r['num_workers']:>4}"
              f"{r['seconds_per_epoch']:>9.2f}{r['images_per_second']:>11,.0f}{r['test_acc']:>10.4f}"
              f"{r['peak_mem_mb']:>9.0f}{r['total_seconds']:>9.1f}{r['cpu_seconds']:>8.1f}")
    print(f"(peak MB: {rows[0]['mem_kind']}; s/epoch: median of the epochs after the first; "
          "total s: data set-up + epochs + evaluation; CPU s: the CPU time of that, workers included)")
    for model, entry in summary.items():
        for key, s in entry.items():
            t = s["target_speedup"]
            verdict = "no target" if t is None else f"target >= {t:g}x: {'met' if s['speedup_met'] else 'NOT met'}"
            if key == "bf16_over_fp32":
                print(f"{model}: cnnviz bf16 / fp32 = {s['speedup']:.2f}x images/s ({verdict}); accuracy "
                      f"{s['acc_diff_points']:+.2f} points")
                continue
            acc = f"accuracy {s['acc_diff_points']:+.2f} points ({'within' if s['acc_within_1_point'] else 'NOT within'} 1)"
            print(f"{model}: cnnviz {key} / lecture = {s['speedup']:.2f}x images/s ({verdict}); {acc}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter,
                                epilog="The lecture loop needs torchvision's files: for fashion-mnist they are made "
                                       "from Debian's\n/usr/share/datasets/fashion-mnist/*.gz (unpacked once into "
                                       "~/.cache/cnnviz/bench-torchvision);\nfor cifar10 it needs ROOT/cifar-10-batches-py "
                                       "(not the JPEG copy), so fashion-mnist is the default.")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated architectures")
    p.add_argument("--dataset", default="fashion-mnist", choices=list(DATASETS))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--num-workers", type=int, default=usable_cpus(),
                   help="the lecture DataLoader's workers (default: the usable CPUs; the slides say 10)")
    p.add_argument("--limit-train", type=int, default=None, help="train on the first N images only")
    p.add_argument("--limit-test", type=int, default=None,
                   help="evaluate on the first N test images only (smoke runs; the default is all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lecture-root", default=None, help="a torchvision data root for the lecture loop")
    p.add_argument("--json", action="store_true", help="one JSON object per line: each (model, loop), then ratios")
    p.add_argument("--profile", action="store_true",
                   help="instead of timing: torch.profiler tables for a few batches of both loops")
    p.add_argument("--precisions", default="fp32,bf16", help="cnnviz's precisions to time (fp32, bf16, auto)")
    p.add_argument("--no-lecture", action="store_true", help="time cnnviz only (e.g. cifar10 from the JPEG copy)")
    p.add_argument("--_worker", choices=("lecture", "cnnviz"), help=argparse.SUPPRESS)
    p.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.model_list = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.model_list if m not in list_archs()]
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(list_archs())}")
    if args.epochs < 1:
        p.error("--epochs must be at least 1")
    args.precision_list = [x.strip() for x in args.precisions.split(",") if x.strip()]
    if not args.precision_list or set(args.precision_list) - {"fp32", "bf16", "auto"}:
        p.error("--precisions takes fp32, bf16 and/or auto")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._worker:
        args.model = args.model_list[0]
        print(json.dumps(measure(args)))
        return 0
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    machine = machine_info(device)
    if args.profile:
        print(json.dumps(machine) if args.json else f"machine: {machine}")
        for model in args.model_list:
            profile_model(args, model, device)
        return 0
    if not args.no_lecture:
        lecture_root(args.lecture_root, args.dataset)  # fail early (and unpack once) before any timing
    loops = ([] if args.no_lecture else [("lecture", "fp32")]) + [("cnnviz", p) for p in args.precision_list]
    rows = []
    for model in args.model_list:
        for loop, precision in loops:
            print(f"[train_speed] training {model} with the {loop} loop ({precision}, {args.epochs} epochs)...",
                  file=sys.stderr if args.json else sys.stdout, flush=True)
            row = measure_in_subprocess(args, model, loop, precision)
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
    summary = ratios(rows, device)
    machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps({"ratios": summary, "machine": machine,
                          "targets": {"speedup": SPEEDUP_TARGETS.get(device.type, {}),
                                      "bf16_over_fp32": BF16_TARGETS.get(device.type, {}),
                                      "acc_within_points": 100 * ACC_TOLERANCE}}))
    else:
        print_table(rows, summary, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
