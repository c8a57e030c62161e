"""`checkpoints/manifest.json`: what each shipped file is, how well it did and how it was made."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from .checkpoints import read_record
from .paths import shipped_dir
from .storage import atomic_write, sha256


def manifest_entry(path: Path) -> dict:
    """One file's entry: its run record's row and settings, the storage facts and the command."""
    record = read_record(path)
    row, lossy = record.row(), record.dataset.get("lossy", False)
    return {"file": path.name, "arch": record.arch, "downsample": record.downsample,
            "dataset": record.dataset_name, "source": row["source"], "lossy_source": lossy,
            "note": "CIFAR-10 decoded from the JPEG re-encoded copy (slightly lossy)" if lossy else "",
            **{k: v for k, v in asdict(record.config).items() if k not in ("arch", "dataset", "downsample",
                                                                             "epochs", "device")},
            "epochs": record.epochs, "complete": record.complete,
            "final_test_acc": record.final_test_acc if record.history else None, "params": record.params,
            "weights_dtype": record.weights_dtype, "device": record.device, "size_bytes": path.stat().st_size,
            "sha256": sha256(path), "command": record.command}


def write_manifest(folder: Path) -> Path:
    """Rewrite `folder`/manifest.json from the files themselves; the shipped folder's also lists the grid
    commands that remake its seed groups (whoever writes it: train_all.py or a grid run into it)."""
    entries = [manifest_entry(p) for p in sorted(Path(folder).glob("*.pt"))]
    manifest = {"runs": entries, "total_bytes": sum(e["size_bytes"] for e in entries)}
    if Path(folder).resolve() == shipped_dir().resolve():
        from .shipped import grid_commands

        manifest["grids"] = grid_commands()
    text = json.dumps(manifest, indent=1) + "\n"  # several writers may race: each renames a whole file
    return atomic_write(Path(folder) / "manifest.json", lambda tmp: tmp.write_text(text))


def read_manifest(folder: Path) -> dict:
    return json.loads((Path(folder) / "manifest.json").read_text())
