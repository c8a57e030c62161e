"""Retrain every shipped checkpoint that is missing, with the CLI, then rewrite the manifest and the derived results.

    python scripts/train_all.py                 # everything missing (a GPU makes it quick)
    python scripts/train_all.py --cheap         # skip the runs marked expensive (CPU-friendly)
    python scripts/train_all.py --group downsampling --dataset cifar10
    python scripts/train_all.py --force         # retrain even what exists
    python scripts/train_all.py --derived-only  # recompute checkpoints/derived.json (cnnviz.derived) only

A file whose recorded command differs from the planned one (the group's settings changed) is stale:
it is retrained too. A file of the planned command that did not finish (the process was killed: every
epoch is saved) is continued in place from its last finished epoch, with its optimizer state, and keeps
the planned command as its record (its `resumed_from` says it was continued).
"""
import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnnviz import derived  # noqa: E402
from cnnviz.checkpoints import read_record, update_meta  # noqa: E402
from cnnviz.data import load_dataset  # noqa: E402
from cnnviz.manifest import write_manifest  # noqa: E402
from cnnviz.paths import shipped_dir  # noqa: E402
from cnnviz.shipped import command_for, shipped_runs  # noqa: E402


def state_of(run) -> str:
    """"done" (made by the planned command, finished), "unfinished" (planned command, killed part-way),
    or "todo" (missing, unreadable, or made by another command)."""
    try:
        record = read_record(run.path)
    except Exception:  # noqa: BLE001 - missing, unreadable or foreign
        return "todo"
    if record.command != command_for(run):
        return "todo"
    return "done" if record.complete else "unfinished"


def up_to_date(run) -> bool:
    return state_of(run) == "done"


def train_command(run, device: str) -> list[str]:
    """The CLI arguments that make `run`: the planned command, or `--resume` of its unfinished file."""
    extra = ["--device", device] if device != "auto" else []
    if state_of(run) == "unfinished":
        return ["-m", "cnnviz", "train", "--resume", str(run.path), "--epochs", str(run.config.epochs),
                "--out", str(run.path), *extra]
    return shlex.split(command_for(run))[1:] + extra


def write_derived() -> None:
    """Every planned derived result of the shipped files, recomputed from them and the real test sets."""
    t0 = time.time()
    entries = derived.planned_entries()
    path = derived.write_store(entries, load_dataset)
    print(f"{path}: {len(entries)} derived results in {time.time() - t0:.0f}s", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cheap", action="store_true", help="skip expensive runs")
    p.add_argument("--group")
    p.add_argument("--dataset")
    p.add_argument("--force", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--threads", type=int, help="torch threads per run (1 when several share the CPU)")
    p.add_argument("--derived-only", action="store_true", help="only recompute checkpoints/derived.json")
    a = p.parse_args()
    if a.derived_only:
        write_derived()
        return 0
    todo = [r for r in shipped_runs()
            if (not a.cheap or not r.expensive) and (a.group in (None, r.group))
            and (a.dataset in (None, r.config.dataset)) and (a.force or not up_to_date(r))]
    print(f"{len(todo)} runs to train", flush=True)
    failed = 0
    for i, run in enumerate(todo, 1):
        cmd = command_for(run)
        print(f"[{i}/{len(todo)}] {cmd}", flush=True)
        if a.dry_run:
            continue
        if not a.force and up_to_date(run):
            print("    done meanwhile (another process), skipped", flush=True)
            continue
        # A lock file lets several train_all processes share the list (e.g. one per dataset).
        lock = run.path.with_name(f".{run.path.name}.lock")
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            print(f"    being trained by another process ({lock.name}), skipped", flush=True)
            continue
        try:
            resuming = not a.force and state_of(run) == "unfinished"
            if run.path.exists() and not resuming:  # --force, or stale: the CLI never overwrites a file
                print(f"    replacing {run.path.name} ({'--force' if a.force else 'made by another command'})",
                      flush=True)
                run.path.unlink()
            args = train_command(run, a.device)
            if resuming:
                print(f"    continuing its unfinished file: {shlex.join(args)}", flush=True)
            t0 = time.time()
            env = {**os.environ, **({"CNNVIZ_THREADS": str(a.threads)} if a.threads else {})}
            rc = subprocess.call([sys.executable, *args], cwd=ROOT, env=env)
        finally:
            lock.unlink(missing_ok=True)
        if resuming and rc == 0:
            update_meta(run.path, command=cmd)  # the same run, continued: its record keeps the planned command
        print(f"    rc={rc} in {time.time() - t0:.0f}s", flush=True)
        failed += rc != 0
        write_manifest(shipped_dir())
    write_manifest(shipped_dir())
    if not a.dry_run:
        write_derived()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
