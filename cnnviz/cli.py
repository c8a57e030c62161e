"""`python -m cnnviz summary|train|evaluate|list|manifest|grid`: the library from a shell.

Errors a user can cause (unknown names, missing data, hostile files) end as one line on stderr and
exit code 2; `--json` prints machine-readable lines on stdout.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import typing
from pathlib import Path

from .data import DATASETS, DataUnavailable
from .downsample import list_downsamples
from .config import RunConfig, config_fields
from .models import list_archs


class UserError(Exception):
    pass


def _print(obj, as_json: bool, text: str):
    print(json.dumps(obj) if as_json else text, flush=True)


def cmd_summary(a):
    from .models import build_model
    from .runs import dataset_shape
    from .summary import summary

    shape = dataset_shape(a.dataset)
    s = summary(build_model(a.arch, shape, downsample=a.downsample), shape)
    if a.json:
        print(json.dumps({"arch": a.arch, "dataset": a.dataset, "downsample": a.downsample, **s.to_dict()}))
    else:
        print(s.to_text())


def cmd_train(a):
    from .paths import runs_dir
    from .runs import run_training

    resume_from = None
    if a.resume:
        resume_from, cfg = _resume(a)
    elif not a.arch:
        raise UserError("--arch is required (or --resume FILE to continue a run)")
    else:
        cfg = RunConfig(**{f.name: getattr(a, f.name) for f in config_fields()})
    command = "python -m cnnviz " + shlex.join(sys.argv[1:])

    def on_epoch(row):
        _print(row, a.json, f"epoch {row['epoch']:>3}  train loss {row['train_loss']:.4f} acc "
               f"{row['train_acc']:.4f}  test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f}  "
               f"{row['seconds']:.1f}s  {row['images_per_second']:.0f} img/s")

    path, result = run_training(cfg, out=a.out, folder=a.out_dir or runs_dir(), on_epoch=on_epoch, command=command,
                                resume_from=resume_from)
    if not a.json:
        print(f"wrote {path} ({result.reason})")
    if not result.completed:
        raise UserError(f"run ended early ({result.reason}); the epochs done are saved in {path}")


def _resume(a):
    """The checkpoint `--resume` names and the config that continues it (`runs.continuation`): its own
    settings, with `--epochs` (the total) and `--device` from the command line."""
    from .checkpoints import load_checkpoint
    from .runs import continuation

    ck = load_checkpoint(a.resume, with_optimizer=True)
    if a.epochs <= ck.record.epochs:
        raise UserError(f"{a.resume} already has {ck.record.epochs} epochs: ask for more with --epochs "
                        f"(the total, e.g. --epochs {ck.record.epochs + 5})")
    in_place = bool(a.out) and Path(a.out).resolve() == Path(a.resume).resolve()
    try:
        return ck, continuation(ck.record, a.epochs, a.device, half=in_place and ck.record.config.half)
    except ValueError as e:
        raise UserError(f"{a.resume}: {e}") from None


def cmd_evaluate(a):
    from .checkpoints import load_checkpoint
    from .data import load_dataset
    from .train import evaluate

    ck = load_checkpoint(a.file)
    data = load_dataset(ck.record.dataset_name)
    loss, acc = evaluate(ck.model, data, "test", a.device)
    recorded = ck.record.final_test_acc if ck.record.history else None
    out = {"file": str(a.file), "test_acc": acc, "test_loss": loss, "recorded_test_acc": recorded,
           "dataset_source": data.source}
    _print(out, a.json, f"{a.file}: test accuracy {acc:.4f} (recorded {recorded if recorded is None else f'{recorded:.4f}'}), "
           f"loss {loss:.4f}, on {data.source}")


def cmd_list(a):
    from .checkpoints import list_checkpoints

    df = list_checkpoints(*(a.dirs or []))
    if a.json:
        for row in df.to_dict("records"):
            print(json.dumps(row))
    elif df.empty:
        print("no checkpoints found")
    else:
        cols = ["file", "arch", "downsample", "dataset", "epochs", "test_acc", "params", "complete"]
        print(df[cols].to_string(index=False))


def cmd_manifest(a):
    from .manifest import write_manifest

    from .paths import shipped_dir

    path = write_manifest(Path(a.dir) if a.dir else shipped_dir())
    print(f"wrote {path}")


def cmd_grid(a):
    from .grid import group_stats, plan, progress_line, run_grid, stats_table

    def split(text):
        return [x.strip() for x in (text or "").split(",") if x.strip()]

    try:
        seeds = [int(s) for s in split(a.seeds)]
    except ValueError:
        raise UserError(f"--seeds takes whole numbers separated by commas, not {a.seeds!r}") from None
    if a.workers < 1:
        raise UserError("--workers must be at least 1")
    if a.ray and a.workers != 1:
        raise UserError("choose --workers (processes on this machine) or --ray (a cluster), not both")
    hyper = {f.name: getattr(a, f.name) for f in config_fields() if f.name not in GRID_LISTS}
    configs = plan(split(a.arch), split(a.downsample), split(a.dataset), seeds, **hyper)

    def on_result(row):
        _print(row, a.json, progress_line(row))
        if row.get("traceback") and not a.json:
            print(row["traceback"], file=sys.stderr)

    rows = run_grid(configs, a.out, workers=a.workers, ray_address=a.ray, on_result=on_result)
    stats = group_stats(rows)
    count = {s: sum(r["status"] == s for r in rows) for s in ("done", "skipped", "failed")}
    _print({"summary": stats, "runs": len(rows), **count, "out": a.out}, a.json,
           f"\n{stats_table(stats)}\n{count['done']} trained, {count['skipped']} skipped, "
           f"{count['failed']} failed; checkpoints and manifest.json in {a.out}")
    if count["failed"]:
        raise UserError(f"{count['failed']} of {len(rows)} runs failed; run the same command again to retry them")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit 2), not the whole usage block."""

    def error(self, message):
        self.exit(2, f"error: {message} (see: {self.prog} --help)\n")


# The settings a grid takes as comma lists (every combination is trained); the rest are one value each.
GRID_LISTS = ("arch", "downsample", "dataset", "seed")


def _add_config_options(parser: argparse.ArgumentParser, skip=(), optional=()) -> None:
    """One option per RunConfig field (`--batch-size` for batch_size), with its default, type and help."""
    hints = typing.get_type_hints(RunConfig)
    for f in config_fields():
        if f.name in skip:
            continue
        flag, meta = "--" + f.name.replace("_", "-"), f.metadata
        if hints[f.name] is bool:
            parser.add_argument(flag, action="store_true", help=meta["help"])
            continue
        kind = next(t for t in typing.get_args(hints[f.name]) or (hints[f.name],) if t is not type(None))
        options = {"type": kind, "help": meta["help"]}
        if meta["choices"]:
            options["choices"] = list(meta["choices"]())
        if f.default is dataclasses.MISSING:
            options["required"] = f.name not in optional
        else:
            options["default"] = f.default
        parser.add_argument(flag, **options)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m cnnviz", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    datasets_help = f"{', '.join(DATASETS)}, or a folder with train/<class>/ and test/<class>/ images"

    s = sub.add_parser("summary", help="the lecture's summary table of an architecture")
    s.add_argument("--arch", required=True, choices=list_archs())
    s.add_argument("--dataset", default="fashion-mnist", help=datasets_help)
    s.add_argument("--downsample", choices=list_downsamples())
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_summary)

    t = sub.add_parser("train", help="train on the real data and write a checkpoint")
    _add_config_options(t, optional=("arch",))
    t.add_argument("--resume", metavar="FILE", help="continue this checkpoint's run up to --epochs in all, "
                   "with its own settings, into a new file (the other settings are read from FILE)")
    t.add_argument("--out", help="checkpoint file (default: a new file in --out-dir)")
    t.add_argument("--out-dir", help="folder for the checkpoint (default: $CNNVIZ_RUNS, else the app's runs/ "
                   "folder, where the app lists your runs)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("evaluate", help="recompute a checkpoint's test accuracy on the real test set")
    e.add_argument("file")
    e.add_argument("--device", default="auto")
    e.add_argument("--json", action="store_true")
    e.set_defaults(fn=cmd_evaluate)

    ls = sub.add_parser("list", help="list checkpoints (default: the shipped ones)")
    ls.add_argument("dirs", nargs="*")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(fn=cmd_list)

    m = sub.add_parser("manifest", help="rewrite checkpoints/manifest.json from the files")
    m.add_argument("--dir", default=None, help="default: the shipped checkpoints folder (CNNVIZ_CHECKPOINTS)")
    m.set_defaults(fn=cmd_manifest)

    g = sub.add_parser("grid", help="train every combination (comma lists) into one folder, resumable")
    g.add_argument("--arch", required=True, help=f"comma list of: {', '.join(list_archs())}")
    g.add_argument("--downsample", help=f"comma list of: {', '.join(list_downsamples())} "
                   "(default: each architecture's own)")
    g.add_argument("--dataset", default="fashion-mnist", help="comma list of: " + datasets_help)
    g.add_argument("--seeds", default="0", help="comma list of seeds, e.g. 0,1,2")
    _add_config_options(g, skip=GRID_LISTS)
    g.add_argument("--out", required=True, help="folder for the checkpoints and manifest.json")
    g.add_argument("--workers", type=int, default=1, help="runs at once on this machine, as processes")
    g.add_argument("--ray", metavar="auto|ADDRESS", help="run on a Ray cluster (auto: the one on this machine)")
    g.add_argument("--json", action="store_true")
    g.set_defaults(fn=cmd_grid)
    return p


def main(argv=None) -> int:
    from .checkpoints import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except (UserError, DataUnavailable, CheckpointError, FileExistsError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
