"""Experiment grids: every combination of architectures x downsampling x datasets x seeds, resumable.

Each run is an ordinary checkpoint named by `RunConfig.name` in one folder, and the folder's
`manifest.json` is rewritten after every finished run, so a grid's folder reads like `checkpoints/`.

Resuming: a run whose checkpoint exists and is complete is skipped; a missing run is trained. Every
run writes its checkpoint after each epoch, so a run that was stopped or killed (Ctrl-C, power cut)
leaves its finished epochs, and the grid continues it from the last of them (weights, optimizer
state, shuffling: as if it had never stopped). A checkpoint that cannot be continued (diverged,
failed, unreadable, or made with other settings than the grid's, epochs apart) is moved aside to
`<name>.incomplete-N.pt` / `.unreadable-N.bak` (never deleted) and that run is redone from scratch.

Where the runs go:
- `workers=1`: one after another in this process.
- `workers=N`: N separate processes on this machine (spawned, so no torch state is forked), each
  pinned to its own `usable_cpus() // N` cores.
- `ray_address=...`: one Ray task per run on a Ray cluster. Workers on other machines cannot write this
  machine's disk, so each task returns its checkpoint as bytes and the driver writes it into `out`.
  Ray is optional (`pip install -r requirements-ray.txt`) and imported only on this path.
"""
from __future__ import annotations

import os
import tempfile
import time
import traceback
from dataclasses import asdict, fields, replace
from itertools import product
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .checkpoints import CheckpointError, load_checkpoint, read_record
from .config import RunConfig
from .data import DataUnavailable
from .device import configure_threads, usable_cpus
from .manifest import write_manifest
from .models import get_arch
from .record import RunRecord
from .runs import run_training
from .storage import atomic_write

RAY_INSTALL = "Ray is not installed: pip install -r requirements-ray.txt"
RAY_MAX_CPUS_PER_RUN = 4  # small CNNs on CPU gain little beyond a few intra-op threads
_USER_ERRORS = (DataUnavailable, ValueError, FileExistsError, FileNotFoundError)


class GridError(ValueError):
    """A grid that cannot start (a folder trained with other settings, Ray missing or unreachable)."""


# ---- planning ----------------------------------------------------------------------------------

def plan(archs: Iterable[str], downsamples: Iterable[str | None] | None, datasets: Iterable[str],
         seeds: Iterable[int], **hyper) -> list[RunConfig]:
    """Every combination as a resolved `RunConfig`, dataset by dataset and seed by seed.

    `downsamples` empty or None means each architecture's default. An architecture that never
    downsamples (mlp, conv_only) gets one run per dataset and seed whatever the options; one that
    refuses a given option is a ValueError before anything trains. `hyper` holds the other
    RunConfig fields (epochs, lr, optimizer, batch_size, device, limit_train, half). The order puts
    every option of the first seed before the next seed, so a grid stopped halfway can already
    compare the options.
    """
    downsamples = list(downsamples or [None])
    configs, seen = [], set()
    for dataset, seed, arch in product(datasets, seeds, archs):
        options = downsamples if get_arch(arch).downsamples else [None]
        for ds in options:
            cfg = RunConfig(arch=arch, dataset=dataset, downsample=ds, seed=int(seed), **hyper).resolved()
            if cfg not in seen:  # "max" and None are the same run for an arch whose default is max
                seen.add(cfg)
                configs.append(cfg)
    return configs


# ---- one run (in this process, a spawned worker or a Ray task) ---------------------------------

def _row(cfg: RunConfig, status: str, *, test_acc=None, seconds=0.0, error="", file="", threads=None,
         device="", **extra) -> dict:
    """A grid line: the run's settings (every RunConfig field; `device` is where it really ran) and outcome."""
    return {"status": status, "name": cfg.name, "file": file, **asdict(cfg), "test_acc": test_acc,
            "seconds": round(seconds, 2), "threads": threads, "device": device, "error": error, **extra}


def _config_of(row: dict) -> RunConfig:
    return RunConfig(**{f.name: row[f.name] for f in fields(RunConfig)})


def train_one(cfg: RunConfig, path: str | Path, *, return_bytes: bool = False, resume: bool = False,
              resume_bytes: bytes | None = None) -> tuple[dict, bytes | None]:
    """Train one run into `path` and return its row (status "done" or "failed"; never raises).

    With `return_bytes` the checkpoint is written to a temporary file and returned as bytes instead
    (for a Ray worker, whose disk is not the driver's); the recorded command still names `path`.
    `resume` continues the incomplete checkpoint at `path` (or, for a Ray worker, `resume_bytes`).
    """
    t0 = time.perf_counter()
    command = cfg.command(path)
    try:
        if return_bytes:
            with tempfile.TemporaryDirectory() as tmp:
                target = Path(tmp) / "run.pt"
                if resume_bytes is not None:
                    target.write_bytes(resume_bytes)
                written, result = _train_into(cfg, target, command, resume_bytes is not None)
                blob = written.read_bytes()
        else:
            written, result = _train_into(cfg, Path(path), command, resume)
            blob = None
    except Exception as e:  # noqa: BLE001 - one failed run is reported; the grid goes on
        error = f"{type(e).__name__}: {e}"
        extra = {} if isinstance(e, _USER_ERRORS) else {"traceback": traceback.format_exc()}
        return _row(cfg, "failed", error=error, seconds=time.perf_counter() - t0, **extra), None
    import torch

    acc = result.history[-1]["test_acc"] if result.history else None
    row = _row(cfg, "done" if result.completed else "failed", test_acc=acc, file=Path(path).name,
               seconds=time.perf_counter() - t0, threads=torch.get_num_threads(), device=result.device,
               error="" if result.completed else f"ended early: {result.reason}")
    return row, blob


def _train_into(cfg: RunConfig, path: Path, command: str, resume: bool):
    ck = load_checkpoint(path, with_optimizer=True) if resume else None
    return run_training(cfg, out=path, command=command, resume_from=ck)


def _pin_cpus(slot: int, n: int) -> int:
    """Keep this process on `n` of its CPUs (group number `slot`) and use `n` torch threads.

    Why affinity and not only `torch.set_num_threads`: `train()` sets the thread count to
    `usable_cpus()`, which reads this process's affinity mask, so pinning is what makes it stick;
    disjoint slots also keep parallel runs off each other's cores.
    """
    if hasattr(os, "sched_setaffinity"):
        try:  # the parent's cores, not ours: a reused Ray worker is already pinned by its last task
            cpus = sorted(os.sched_getaffinity(os.getppid()))
        except OSError:
            cpus = sorted(os.sched_getaffinity(0))
        n = min(n, len(cpus))
        start = (slot * n) % len(cpus)
        os.sched_setaffinity(0, {cpus[(start + i) % len(cpus)] for i in range(n)})
    return configure_threads(n)


def _init_worker(counter, threads: int) -> None:
    """ProcessPoolExecutor initializer: each worker process takes the next slot of cores."""
    with counter.get_lock():
        slot = counter.value
        counter.value += 1
    _pin_cpus(slot, threads)


def _ray_task(cfg: RunConfig, path: str, slot: int, threads: int | None,
              resume_bytes: bytes | None = None) -> tuple[dict, bytes | None]:
    # Ray does not pin tasks to cores; tasks started together have neighbouring slots, so they mostly
    # land on different cores. GPU tasks (threads=None) leave the CPU alone.
    if threads:
        _pin_cpus(slot, threads)
    return train_one(cfg, path, return_bytes=True, resume_bytes=resume_bytes)


# ---- the grid ----------------------------------------------------------------------------------

def _inspect(path: Path, cfg: RunConfig) -> tuple[str, RunRecord | None]:
    """What `path` holds for `cfg`: ("missing" | "complete" | "resumable" | "incomplete" | "unreadable",
    its record); "resumable" is an incomplete run the grid can continue (`_can_continue`).

    A complete file made with other settings is a GridError: the name does not carry epochs or lr,
    so skipping it would silently mix two experiments in one folder.
    """
    if not path.exists():
        return "missing", None
    try:
        record = read_record(path)
    except CheckpointError:
        return "unreadable", None
    if not record.complete:
        return ("resumable" if _can_continue(record, cfg) else "incomplete"), record
    # "auto" in the config, "cuda"/"cpu" (or "bf16"/"fp32") in the file: the machine's choice is not another run.
    wanted = cfg.as_recorded_by(record.config)
    differ = [f"{f.name}={getattr(record.config, f.name)!r} (wanted {getattr(wanted, f.name)!r})"
              for f in fields(RunConfig) if f.name != "device" and getattr(record.config, f.name) != getattr(wanted, f.name)]
    if differ:
        raise GridError(f"{path} was trained with {', '.join(differ)}; use another --out folder")
    return "complete", record


def _can_continue(record: RunRecord, cfg: RunConfig) -> bool:
    """An incomplete run the grid can go on with: stopped or cut off (not failed), some epochs done but
    not all, and made with the grid's settings apart from the number of epochs and the device."""
    cut_off = record.reason == "stopped" or record.reason.startswith("saved after epoch")
    same = replace(record.config, epochs=cfg.epochs, device=cfg.device) == cfg.as_recorded_by(record.config)
    return cut_off and same and 0 < record.epochs < cfg.epochs


def _move_aside(path: Path, tag: str) -> Path:
    # An unreadable file keeps out of `*.pt` so the manifest (which reads every .pt) does not choke on it.
    suffix = ".pt" if tag == "incomplete" else ".bak"
    i = 1
    while (aside := path.with_name(f"{path.stem}.{tag}-{i}{suffix}")).exists():
        i += 1
    os.replace(path, aside)
    return aside


def _write_bytes(path: Path, blob: bytes, replace_own: bool = False) -> None:
    """Write a checkpoint that came back from a Ray task, atomically; over an existing file only when the
    task continued that very file (`replace_own`)."""
    atomic_write(path, lambda tmp: tmp.write_bytes(blob), overwrite=replace_own)


def run_grid(configs: Sequence[RunConfig], out: str | Path, workers: int = 1,
             ray_address: str | None = None, on_result: Callable[[dict], None] | None = None) -> list[dict]:
    """Run every config not already complete in `out`; returns one row per config, in finishing order.

    A row: status ("done", "skipped" or "failed"), name, file, arch, downsample, dataset, seed, the
    hyperparameters, test_acc (final epoch), seconds, threads, device, error, and index/total (its
    place in finishing order). `on_result(row)` is called in this process as each run finishes.
    A failed run is a row with its error; the other runs go on. Raises GridError before training
    anything when `out` holds a complete run made with other settings, or Ray is missing/unreachable.
    """
    if ray_address:
        _import_ray()  # a missing Ray is reported before anything is touched
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    configs = [c.resolved() for c in configs]
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise GridError(f"two configs share the checkpoint name {dup!r} (same arch, option, dataset, seed)")
    rows: list[dict] = []

    def finish(row: dict, trained: bool = True) -> None:
        row.update(index=len(rows) + 1, total=len(configs))
        rows.append(row)
        if trained and (out / f"{row['name']}.pt").exists():
            write_manifest(out)
        if on_result:
            on_result(row)

    # Every file is checked before anything is moved or trained: a folder made with other settings
    # fails as a whole, untouched.
    paths = [out / f"{cfg.name}.pt" for cfg in configs]
    found = [(cfg, path, *_inspect(path, cfg)) for cfg, path in zip(configs, paths)]
    todo = []
    for cfg, path, state, record in found:
        if state == "complete":
            finish(_row(cfg, "skipped", test_acc=record.final_test_acc if record.history else None, file=path.name,
                        device=record.device), trained=False)
            continue
        if state in ("incomplete", "unreadable"):
            _move_aside(path, state)  # kept beside the folder's runs, never deleted; the run starts over
        todo.append((cfg, path, state == "resumable"))

    if ray_address:
        _run_on_ray(todo, ray_address, finish)
    elif workers > 1 and len(todo) > 1:
        _run_in_processes(todo, workers, finish)
    else:
        for cfg, path, resume in todo:
            finish(train_one(cfg, path, resume=resume)[0])
    write_manifest(out)  # also when everything was skipped, so the folder always has one
    return rows


def _run_in_processes(todo, workers: int, finish) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    workers = min(workers, len(todo))
    threads = max(1, usable_cpus() // workers)
    ctx = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools and locks
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(ctx.Value("i", 0), threads)) as pool:
        futures = {pool.submit(train_one, cfg, path, resume=resume): cfg for cfg, path, resume in todo}
        for fut in as_completed(futures):
            try:
                row = fut.result()[0]
            except Exception as e:  # noqa: BLE001 - a worker process died (killed, out of memory)
                row = _row(futures[fut], "failed", error=f"worker process died: {type(e).__name__}: {e}")
            finish(row)


def _ray_cpus_per_run(ray) -> int:
    """CPUs per CPU task: half the smallest node, at most RAY_MAX_CPUS_PER_RUN, at least 1."""
    node_cpus = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    smallest = int(min((c for c in node_cpus if c), default=1))
    return max(1, min(RAY_MAX_CPUS_PER_RUN, smallest // 2))


def ray_runtime_env() -> dict:
    """The Ray job environment a grid needs: this cnnviz package, shipped to every worker.

    Workers then run the driver's exact code (comparable results) and need no checkout of their own;
    they find the data the usual way (`CNNVIZ_DATA` in the environment of `ray start`, Debian's
    Fashion-MNIST package, or a download). Ray accepts a local folder here only at `ray.init`.
    """
    return {"py_modules": [str(Path(__file__).resolve().parent)]}


def _import_ray():
    try:
        import ray
    except ImportError:
        raise GridError(RAY_INSTALL) from None
    return ray


def _run_on_ray(todo, address: str, finish) -> None:
    ray = _import_ray()
    started_here = not ray.is_initialized()  # else the caller's ray.init(runtime_env=ray_runtime_env())
    if started_here:
        try:
            ray.init(address=address, runtime_env=ray_runtime_env())  # "auto": the cluster `ray start` made here
        except ConnectionError as e:
            raise GridError(f"no Ray cluster at {address!r} ({e}); start one with `ray start --head`") from None
    try:
        has_gpus = ray.cluster_resources().get("GPU", 0) >= 1
        cpus = _ray_cpus_per_run(ray)
        task = ray.remote(_ray_task)
        refs = {}
        for slot, (cfg, path, resume) in enumerate(todo):
            on_gpu = has_gpus and cfg.device in ("auto", "cuda")
            opts = {"num_gpus": 1, "num_cpus": 1} if on_gpu else {"num_cpus": cpus}
            ref = task.options(**opts).remote(cfg, str(path), slot, None if on_gpu else cpus,
                                              path.read_bytes() if resume else None)
            refs[ref] = (cfg, path, resume)
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            cfg, path, resume = refs[done[0]]
            try:
                row, blob = ray.get(done[0])
            except ray.exceptions.RayError as e:  # the worker or its node died
                row, blob = _row(cfg, "failed", error=f"Ray task failed: {str(e).splitlines()[0]}"), None
            if blob is not None:
                _write_bytes(path, blob, replace_own=resume)
            finish(row)
    finally:
        if started_here:
            ray.shutdown()


# ---- results -----------------------------------------------------------------------------------

def group_stats(rows: Iterable[dict]) -> list[dict]:
    """Final test accuracy per config group (same everything but the seed), over its seeds.

    Only runs with an accuracy from a complete checkpoint count ("done" or "skipped"). `std` is the
    sample standard deviation (ddof=1): the seeds are a sample of the initialisations one could
    draw, and with 3 seeds ddof=0 would understate the spread by ~18%. It is None for a single seed.
    """
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["status"] in ("done", "skipped") and r.get("test_acc") is not None:
            groups.setdefault(_config_of(r).experiment(), []).append(r)
    stats = []
    for key, members in groups.items():
        acc = np.array([m["test_acc"] for m in members], dtype=np.float64)
        stats.append({**dict(key), "n": len(acc), "mean": float(acc.mean()),
                      "std": float(acc.std(ddof=1)) if len(acc) > 1 else None,
                      "min": float(acc.min()), "max": float(acc.max()),
                      "seeds": sorted(m["seed"] for m in members)})
    return stats


def progress_line(row: dict) -> str:
    """"[3/12] fashion-mnist downsample_compare avg seed 1: test acc 0.8912 in 41 s"."""
    what = " ".join(str(x) for x in (row["dataset"], row["arch"], row["downsample"]) if x)
    head = f"[{row['index']}/{row['total']}] {what} seed {row['seed']}"
    acc = "" if row.get("test_acc") is None else f"test acc {row['test_acc']:.4f}"
    if row["status"] == "skipped":
        return f"{head}: skipped, already complete ({acc})"
    if row["status"] == "failed":
        return f"{head}: FAILED after {row['seconds']:.0f} s: {row['error']}"
    return f"{head}: {acc} in {row['seconds']:.0f} s"


def stats_table(stats: list[dict]) -> str:
    """The summary as aligned text: one line per group, mean ± std over its n seeds."""
    if not stats:
        return "no complete runs"
    lines = [f"{'dataset':<14} {'arch':<20} {'downsample':<10} {'n':>2}  {'mean ± std':<15}  {'min':<6}  {'max':<6}"]
    for s in stats:
        spread = f"{s['mean']:.4f}" + ("" if s["std"] is None else f" ± {s['std']:.4f}")
        lines.append(f"{s['dataset']:<14} {s['arch']:<20} {s['downsample'] or '-':<10} {s['n']:>2}  "
                     f"{spread:<15}  {s['min']:.4f}  {s['max']:.4f}")
    return "\n".join(lines)
