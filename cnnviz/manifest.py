"""`checkpoints/manifest.json`: what each shipped file is, how well it did and how it was made."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .checkpoints import read_meta, sha256
from .paths import shipped_dir


def manifest_entry(path: Path) -> dict:
    meta = read_meta(path)
    h = meta["history"]
    ds = meta["dataset"]
    return {"file": path.name, "arch": meta["arch"], "downsample": meta.get("downsample"),
            "dataset": ds["name"], "source": ds.get("source"),
            "lossy_source": ds.get("lossy", False),
            "note": "CIFAR-10 decoded from the JPEG re-encoded copy (slightly lossy)" if ds.get("lossy") else "",
            "seed": meta["train"].get("seed"), "lr": meta["train"].get("lr"),
            "batch_size": meta["train"].get("batch_size"), "optimizer": meta["train"].get("optimizer"),
            "epochs": len(h), "complete": meta.get("complete"),
            "final_test_acc": h[-1]["test_acc"] if h else None,
            "params": meta.get("params"), "weights_dtype": meta.get("weights_dtype"),
            "device": meta["train"].get("device"), "size_bytes": path.stat().st_size,
            "sha256": sha256(path), "command": meta.get("command", "")}


def write_manifest(folder: Path) -> Path:
    """Rewrite `folder`/manifest.json from the files themselves; the shipped folder's also lists the grid
    commands that remake its seed groups (whoever writes it: train_all.py or a grid run into it)."""
    entries = [manifest_entry(p) for p in sorted(Path(folder).glob("*.pt"))]
    manifest = {"runs": entries, "total_bytes": sum(e["size_bytes"] for e in entries)}
    if Path(folder).resolve() == shipped_dir().resolve():
        from .shipped import grid_commands

        manifest["grids"] = grid_commands()
    out = Path(folder) / "manifest.json"
    tmp = out.with_suffix(f".json.tmp{os.getpid()}")  # several writers may race
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, out)
    return out


def read_manifest(folder: Path) -> dict:
    return json.loads((Path(folder) / "manifest.json").read_text())
