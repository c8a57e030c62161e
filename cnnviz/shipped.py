"""The runs shipped in `checkpoints/`: which configs, in which comparison group, and how to remake them.

Within a group every run shares seed, optimiser, learning rate, batch size and epochs, so their
curves are comparable. `scripts/train_all.py` trains whatever is missing with the CLI command that
`command_for` gives, and the manifest records that command beside each file.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, replace

from .costs import arch_macs
from .data import DATASETS
from .downsample import downsample_label, list_downsamples
from .models import list_baselines
from .paths import shipped_dir
from .config import RunConfig

EPOCHS = 10
GRID_SEEDS = (0, 1, 2)
# The baselines group (MLP, Sobel and Scharr front ends, learned conv, LeNet-5) trains with batch 128, not
# the lecture's 1024: 10 epochs at 1024 are ~500 Adam steps, after which the small CNNs are still climbing
# steeply and the 1.7M-parameter MLP is not (measured on CIFAR-10: LeNet-5 54.5% after 10 epochs at 1024,
# still +1.3 points an epoch; 63.1% at 128). Every member of the group gets the same batch: the comparison
# is fair.
BASELINE_BATCH_SIZE = 128


# The lecture's heavy nets train in bf16 autocast: on the project's 2-core CPUs (native bf16) one Adam
# step of vgg16 on CIFAR-10 is 2.2x faster and conv_only's 3.4x (docs/benchmarks.md); every other shipped
# run was trained in fp32 before precision was a setting, and says so.
HEAVY_PRECISION = "bf16"
# VGG16 has no batch norm: 13 ReLU convs in a row from PyTorch's default init. Measured on the first 10,000
# CIFAR-10 images, batch 128, bf16: at Adam 1e-3 it sits at chance (test loss 2.3026 = ln 10, 10.0 % after
# an epoch); at 1e-4 it learns (test loss 2.238, 16.1 % after one epoch, 19.3 % after two). Batch 256 keeps
# an epoch at ~4.5 minutes on 2 cores (docs/benchmarks.md, "VGG16").
VGG16_LR = 1e-4
VGG16_BATCH_SIZE = 256
# ~5.5 minutes an epoch on 2 quiet cores (train + fp32 test pass), far more on a loaded one: what a 2-core
# session could afford. Continue it for more with `python -m cnnviz train --resume` or on Train & compare.
VGG16_EPOCHS = 5
LECTURE_LR = 1e-5  # the slides' Adam learning rate (batch 1024); cnnviz's default is 1e-3


@dataclass(frozen=True)
class ShippedRun:
    group: str
    config: RunConfig
    expensive: bool = False  # > ~20 min on a 2-core CPU: trained when a GPU (or patience) is at hand
    stem: str | None = None  # the file's name where the config's own would clash (same net, other lr)

    @property
    def filename(self) -> str:
        return (self.stem or self.config.name) + ".pt"

    @property
    def path(self):
        return shipped_dir() / self.filename


def _run(group, arch, dataset, downsample=None, seed=0, expensive=False, batch_size=1024, lr=1e-3,
         precision="fp32", stem=None, epochs=EPOCHS):
    config = RunConfig(arch=arch, dataset=dataset, downsample=downsample, epochs=epochs, seed=seed, lr=lr,
                       batch_size=batch_size, half=True, precision=precision).resolved()
    return ShippedRun(group, config, expensive, stem)


def shipped_runs() -> list[ShippedRun]:
    """Every shipped run, cheapest and most used first (the order `train_all.py` trains them in)."""
    fm, cf = "fashion-mnist", "cifar10"
    methods = list_downsamples()  # resolved now: a method registered later is planned (and trained) too
    runs = [_run("downsampling", "downsample_compare", fm, d) for d in methods]
    runs += [_run("baselines", a, ds, batch_size=BASELINE_BATCH_SIZE) for ds in (fm, cf) for a in list_baselines()]
    runs += [_run("architectures", a, fm) for a in ("lenet_1x1", "lenet_fc")]
    runs += [_run("downsampling", "downsample_compare", cf, d) for d in methods]
    runs += [_run("seeds", "downsample_compare", fm, d, seed=s) for d in methods for s in GRID_SEEDS if s]
    runs += [_run("architectures", "lenet_fc", cf)]
    runs += [_run("lecture", "downsample_compare", fm, "max", lr=LECTURE_LR,
                  stem=f"{fm}-downsample_compare-max-lr1e-5")]
    runs += [_run("architectures", "lenet_1x1", cf, precision=HEAVY_PRECISION)]
    runs += [_run("precision", "downsample_compare", fm, "max", seed=s, precision="bf16",
                  stem=RunConfig(arch="downsample_compare", dataset=fm, downsample="max", seed=s).name + "-bf16")
             for s in GRID_SEEDS]
    runs += [_run("architectures", a, fm, expensive=True) for a in ("conv_stride", "conv_pool", "same_padding", "conv_only")]
    runs += [_run("architectures", "conv_pool", cf, expensive=True)]
    runs += [_run("architectures", "conv_only", cf, expensive=True, precision=HEAVY_PRECISION)]
    runs += [_run("lecture", "vgg16", cf, expensive=True, lr=VGG16_LR, batch_size=VGG16_BATCH_SIZE,
                  precision=HEAVY_PRECISION, epochs=VGG16_EPOCHS)]
    return runs


# The lecture's comparisons borrow these runs of other groups (arch, dataset, downsampling): the same net
# at cnnviz's default lr beside the slides' 1e-5, and the conv-only net (case 2) and the MLP beside VGG16.
LECTURE_COMPANIONS = {("downsample_compare", "fashion-mnist", "max"), ("conv_only", "cifar10", None),
                      ("mlp", "cifar10", None)}


def _borrowed(group: str, r: ShippedRun) -> bool:
    if group == "seeds":  # the downsampling group's runs are the seed-0 members of the seed group
        return r.group == "downsampling"
    key = (r.config.arch, r.config.dataset, r.config.downsample)
    if group == "precision":  # the fp32 seeds of the same net beside the bf16 ones
        return r.group in ("downsampling", "seeds") and key == ("downsample_compare", "fashion-mnist", "max")
    return group == "lecture" and r.group != "lecture" and r.stem is None and r.config.seed == 0 and key in LECTURE_COMPANIONS


def runs_of_group(group: str, dataset: str | None = None) -> list[ShippedRun]:
    """Runs of a group, with those it borrows from others (`_borrowed`)."""
    out = []
    for r in shipped_runs():
        in_group = r.group == group or _borrowed(group, r)
        if in_group and (dataset is None or r.config.dataset == dataset):
            out.append(r)
    return out


def find_run(arch: str, dataset: str, downsample: str | None = None) -> ShippedRun | None:
    """The planned seed-0 shipped run of this net (its file may not exist yet), or None if none is planned."""
    downsample = RunConfig(arch=arch, downsample=downsample).resolved().downsample
    return next((r for r in shipped_runs() if r.config.seed == 0 and (r.config.arch, r.config.dataset,
                 r.config.downsample) == (arch, dataset, downsample)), None)


def missing_sentence(arch: str, dataset: str, downsample: str | None) -> str:
    """Why no shipped run of this net is shown, and which downsampling to pick instead where one is shipped."""
    others = shipped_downsamples(arch, dataset)
    which = f"{arch} ({downsample_label(downsample)})" if downsample else arch
    planned = find_run(arch, dataset, downsample)
    if others and downsample:
        hint = f"Shipped for {dataset} with: {', '.join(downsample_label(d) for d in others)}; pick it above."
    elif planned is not None:
        hint = (f"It is planned but not trained yet: make it with `{command_for(planned)}` (from the repository "
                "root), or train it on the Train & compare page.")
    else:
        hint = availability(arch)
    return f"No shipped checkpoint of {which} on {dataset}. {hint}"


def shipped_downsamples(arch: str, dataset: str) -> list[str | None]:
    """The downsampling options of `arch` whose seed-0 run on `dataset` is shipped (its file exists)."""
    return [r.config.downsample for r in shipped_runs() if r.config.seed == 0 and r.path.exists()
            and (r.config.arch, r.config.dataset) == (arch, dataset)]


def standings(table, dataset: str):
    """The seed-0 shipped runs on `dataset` that `table` (the runs table, a DataFrame) holds, best test
    accuracy first, with the group and batch size that say which of them were trained alike, and each
    net's multiply-adds per image."""
    if table.empty:
        return table
    planned = {r.filename: r for r in shipped_runs() if r.config.dataset == dataset and r.config.seed == 0}
    rows = table[(table["origin"] == "shipped") & table["file"].isin(list(planned))]
    runs = [planned[f] for f in rows["file"]]
    spec = DATASETS[dataset]
    rows = rows.assign(group=[r.group for r in runs], batch_size=[r.config.batch_size for r in runs],
                       lr=[r.config.lr for r in runs], precision=[r.config.precision for r in runs],
                       macs=[arch_macs(r.config.arch, spec.shape, len(spec.classes), r.config.downsample)
                             for r in runs])
    return rows.sort_values("test_acc", ascending=False, kind="stable").reset_index(drop=True)


GROUP_TITLES = {"seeds": "Downsampling, seeds 0-2", "downsampling": "Downsampling", "baselines": "Baselines",
                "architectures": "Architectures", "lecture": "The lecture's comparisons",
                "precision": "bf16 vs fp32, seeds 0-2"}


@dataclass(frozen=True)
class ComparisonGroup:
    """Shipped runs to load together: `id` is what a link says (`group=seeds-fashion-mnist`), `title` what a
    menu says ("Downsampling, seeds 0-2 on fashion-mnist")."""

    id: str
    title: str
    dataset: str
    files: tuple[str, ...]


def group_id(group: str, dataset: str) -> str:
    """The short id of a group on a dataset: its name and the dataset's ("architectures-cifar10")."""
    return f"{group}-{dataset}"


def comparison_groups() -> dict[str, ComparisonGroup]:
    """Each comparison group per dataset, by id: the files to load together. A dataset's seed group is listed
    only where it adds seeds to its downsampling group."""
    out = {}
    for dataset in ("fashion-mnist", "cifar10"):
        seed_0 = [r.filename for r in runs_of_group("downsampling", dataset)]
        for group, title in GROUP_TITLES.items():
            files = [r.filename for r in runs_of_group(group, dataset)]
            if files and (group != "seeds" or files != seed_0):
                gid = group_id(group, dataset)
                out[gid] = ComparisonGroup(gid, f"{title} on {dataset}", dataset, tuple(files))
    return out


def retrain_config(run: ShippedRun, epochs: int) -> RunConfig:
    """`run` trained again with its group's settings (its seed: the same start) for `epochs` epochs. The
    retrained run is the user's: stored in full precision with its optimizer state, so it can be continued."""
    return replace(run.config, epochs=epochs, half=False)


def command_for(run: ShippedRun) -> str:
    return run.config.command(f"checkpoints/{run.filename}")


def grid_commands() -> list[dict]:
    """For each dataset, the one `python -m cnnviz grid` command that remakes its downsampling x seeds
    group into checkpoints/ (complete files are skipped, missing ones trained), and the files it covers."""
    out = []
    for dataset in ("fashion-mnist", "cifar10"):
        runs = runs_of_group("seeds", dataset)
        if not runs:
            continue
        c = runs[0].config
        downsamples = list(dict.fromkeys(r.config.downsample for r in runs))
        seeds = sorted({r.config.seed for r in runs})
        args = ["python", "-m", "cnnviz", "grid", "--arch", c.arch, "--downsample", ",".join(downsamples),
                "--dataset", dataset, "--seeds", ",".join(map(str, seeds)), "--epochs", str(c.epochs),
                "--lr", str(c.lr), "--batch-size", str(c.batch_size)] + (["--half"] if c.half else [])
        out.append({"group": "seeds", "dataset": dataset, "command": shlex.join(args + ["--out", "checkpoints"]),
                    "files": [r.filename for r in runs]})
    return out


def availability(arch: str) -> str:
    """One sentence for the pages: which shipped checkpoints of `arch` there are, or why none."""
    planned = [r for r in shipped_runs() if r.config.arch == arch]
    present = sorted({r.config.dataset for r in planned if r.path.exists()})
    waiting = sorted({r.config.dataset for r in planned if not r.path.exists()})
    groups = " or ".join(f"`python scripts/train_all.py --group {g}`"
                         for g in sorted({r.group for r in planned if not r.path.exists()}))
    if present:
        text = f"Shipped checkpoints (trained by this project): {', '.join(present)}."
        return text + (f" More are planned but not trained yet: make them with {groups}." if groups else "")
    if planned:
        return (f"No shipped checkpoint yet ({', '.join(waiting)}): make it with {groups} (much faster on a GPU), "
                "or train it on the Train & compare page.")
    return ("Not shipped: this net must be trained by you (Train & compare page, or "
            f"`python -m cnnviz train --arch {arch}`).")
