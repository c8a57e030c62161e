"""Datasets as uint8 tensors, from whichever real source this machine has.

Sources, tried in order (the first that has the files wins, the result is cached as one `.pt`):
ROOT is `cnnviz.paths.data_dir()` (`CNNVIZ_DATA`, default `data/`).
1. our own cache `ROOT/cnnviz-cache/<name>.v2.pt` (rebuilt if unreadable);
2. a torchvision layout under ROOT (`FashionMNIST/raw/*`, `cifar-10-batches-py/`);
3. Debian's `dataset-fashion-mnist` package (`/usr/share/datasets/fashion-mnist/*.gz`);
4. an image-folder copy, `ROOT/cifar10-jpg/{train,test}/<class>/*.jpg` (or `CNNVIZ_CIFAR10_DIR`);
5. torchvision's download into ROOT, when online.
Images stay uint8 (N, C, H, W) so a whole dataset costs its raw size (47 MB for Fashion-MNIST,
184 MB for CIFAR-10); normalisation happens per batch on the device.
"""
from __future__ import annotations

import gzip
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .paths import data_dir
from .storage import atomic_write

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    shape: tuple[int, int, int]
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    folder: str  # the image-folder copy's directory name under ROOT
    label: str = ""  # how pages write it: "Fashion-MNIST"


DATASETS: dict[str, DatasetSpec] = {
    "fashion-mnist": DatasetSpec(
        "fashion-mnist", (1, 28, 28),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
         "Ankle boot"), (0.5,), (0.5,), "fashion-mnist-img", "Fashion-MNIST"),
    "cifar10": DatasetSpec(
        "cifar10", (3, 32, 32),
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "cifar10-jpg", "CIFAR-10"),
}


class DataUnavailable(RuntimeError):
    """No source for a dataset was found; the message says every way to get one."""


@dataclass
class Dataset:
    """A whole dataset in memory: uint8 images (N, C, H, W), int64 labels, and where it came from."""
    name: str
    classes: tuple[str, ...]
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str  # e.g. "debian:/usr/share/datasets/fashion-mnist"
    lossy: bool = False  # True when decoded from JPEG re-encodings (the shared CIFAR-10 copy)
    skipped: int = 0  # unreadable files skipped in an image folder
    extra: dict = field(default_factory=dict)
    _affine_cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    def normalize(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> float32, scaled to [0, 1] then (x - mean) / std like `Normalize`.

        As one multiply-add, x * 1/(255 std) - mean/std, with the per-channel factors made once per
        device: building them per batch copied two small tensors to the GPU, a sync every batch."""
        scale, shift = self._affine(x_uint8.device)
        return torch.addcmul(shift, x_uint8.float(), scale)

    def _affine(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = str(device)
        if key not in self._affine_cache:
            mean = torch.tensor(self.mean, dtype=torch.float64).view(1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=torch.float64).view(1, -1, 1, 1)
            self._affine_cache[key] = ((1 / (255 * std)).float().to(device), (-mean / std).float().to(device))
        return self._affine_cache[key]

    def describe(self) -> dict:
        return {"name": self.name, "source": self.source, "lossy": self.lossy,
                "shape": list(self.shape), "classes": list(self.classes), "mean": list(self.mean),
                "std": list(self.std), "train_size": len(self.train_y), "test_size": len(self.test_y)}


def list_datasets() -> list[str]:
    return list(DATASETS)


# ---- readers -------------------------------------------------------------------------------

def _read_idx(path: Path) -> np.ndarray:
    """IDX file (Fashion-MNIST's format), gzipped or not -> numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for p in (folder / stem, folder / f"{stem}.gz"):
        if p.is_file():
            return p
    return None


def _from_idx_folder(folder: Path) -> tuple | None:
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
    paths = [_find_idx(folder, s) for s in stems]
    if not all(paths):
        return None
    tx, ty, vx, vy = (_read_idx(p) for p in paths)
    as_x = lambda a: torch.from_numpy(a.copy()).unsqueeze(1)  # (N, 28, 28) -> (N, 1, 28, 28)
    as_y = lambda a: torch.from_numpy(a.astype(np.int64))
    return as_x(tx), as_y(ty), as_x(vx), as_y(vy)


def _from_cifar_batches(folder: Path) -> tuple | None:
    """torchvision's `cifar-10-batches-py` (pickled numpy batches, the format CIFAR-10 ships in)."""
    if not (folder / "data_batch_1").is_file():
        return None
    import pickle  # the official CIFAR-10 format; only read from the user's own data root

    def load(names):
        xs, ys = [], []
        for n in names:
            with open(folder / n, "rb") as f:
                d = pickle.load(f, encoding="latin1")
            xs.append(np.asarray(d["data"], np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d["labels"], np.int64))
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    tx, ty = load([f"data_batch_{i}" for i in range(1, 6)])
    vx, vy = load(["test_batch"])
    return tx, ty, vx, vy


def _decode_image(path: Path, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L" if channels == 1 else "RGB")
        if size is not None and im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def read_image_folder(folder: Path, channels: int | None = None, size: tuple[int, int] | None = None,
                      classes: tuple[str, ...] | None = None):
    """`folder/{train,test}/<class>/*` -> tensors, class names, skipped count.

    Channels and size default to those of the first readable image; unreadable files are skipped and
    counted rather than fatal (one broken JPEG should not cost a class its dataset).
    """
    folder = Path(folder)
    classes = classes or tuple(sorted(p.name for p in (folder / "train").iterdir() if p.is_dir()))
    skipped, out = 0, []
    for split in ("train", "test"):
        per_class = []
        for label, cls in enumerate(classes):
            files = sorted(p for p in (folder / split / cls).glob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
            images = []
            for p in files:
                try:
                    if channels is None or size is None:
                        from PIL import Image
                        with Image.open(p) as im:
                            channels = channels or (1 if im.mode in ("L", "I;16", "I", "1") else 3)
                            size = size or (im.size[1], im.size[0])
                    images.append(_decode_image(p, channels, size))
                except Exception:  # noqa: BLE001 - any undecodable file is skipped and counted
                    skipped += 1
            per_class.append(images)
        xs, ys = _interleave(per_class)
        if not xs:
            raise DataUnavailable(f"no readable images in {folder / split}")
        out += [torch.from_numpy(np.stack(xs)), torch.tensor(ys, dtype=torch.int64)]
    return (*out, classes, skipped)


def _interleave(per_class: list[list[np.ndarray]]) -> tuple[list[np.ndarray], list[int]]:
    """One image of each class in turn (0, 1, ..., 9, 0, 1, ...): a folder lists a class at a time, and in
    that order "the first N images" (a training subset, a page's first test images) would all be
    airplanes. Interleaved, every prefix holds the classes in their proportions, as torchvision's do."""
    xs, ys = [], []
    for i in range(max((len(c) for c in per_class), default=0)):
        for label, images in enumerate(per_class):
            if i < len(images):
                xs.append(images[i])
                ys.append(label)
    return xs, ys


# ---- the loader ----------------------------------------------------------------------------

_MEMORY: dict[tuple[str, str], Dataset] = {}
_LOCK = threading.Lock()


def load_dataset(name: str, root: str | Path | None = None, download: bool = True) -> Dataset:
    """Load `name` ("fashion-mnist", "cifar10", or a path to an image folder) as uint8 tensors.

    Decoded once per machine (cached as `.pt` under ROOT) and once per process (kept in memory, so
    several pages and sessions share one copy).
    """
    root = Path(root) if root is not None else data_dir()
    key = (name, str(root))
    with _LOCK:
        if key not in _MEMORY:
            _MEMORY[key] = _load_uncached(name, root, download)
        return _MEMORY[key]


def in_memory(name: str) -> bool:
    """Whether this process already holds dataset `name` (loaded from any root): a job adds no copy of it."""
    return any(key[0] == name for key in list(_MEMORY))  # no lock: a load holds it for seconds


def _cache_path(name: str, root: Path) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    # v2: image folders interleave their classes (_interleave); a v1 cache holds them class after class
    return root / "cnnviz-cache" / f"{safe}.v2.pt"


def _load_uncached(name: str, root: Path, download: bool) -> Dataset:
    cache = _cache_path(name, root)
    if cache.is_file():
        try:
            # Memory-mapped: the decoded tensors are the file's pages, read on first touch and shared with the
            # OS page cache (a CIFAR-10 cache is 184 MB; a mapped open takes milliseconds).
            d = torch.load(cache, weights_only=True, mmap=True)
            return Dataset(**{**d, "classes": tuple(d["classes"]), "mean": tuple(d["mean"]),
                              "std": tuple(d["std"])})
        except Exception:  # noqa: BLE001 - a corrupt or stale cache is rebuilt from the source
            cache.unlink(missing_ok=True)
    ds = _from_sources(name, root, download)
    _write_cache(ds, cache)
    return ds


def _write_cache(ds: Dataset, cache: Path) -> None:
    try:
        state = {k: getattr(ds, k) for k in ("name", "classes", "train_x", "train_y", "test_x", "test_y",
                                             "mean", "std", "source", "lossy", "skipped")}
        atomic_write(cache, lambda tmp: torch.save(state, tmp))
    except OSError:
        pass  # a read-only root (e.g. a cloud deploy) just means decoding again next start


def _from_sources(name: str, root: Path, download: bool) -> Dataset:
    if name not in DATASETS:
        folder = Path(name)
        if not (folder / "train").is_dir() or not (folder / "test").is_dir():
            raise DataUnavailable(
                f"unknown dataset {name!r}: use one of {', '.join(DATASETS)} or a folder with "
                f"train/<class>/*.jpg and test/<class>/*.jpg")
        tx, ty, vx, vy, classes, skipped = read_image_folder(folder)
        c = tx.shape[1]
        return Dataset(folder.name, classes, tx, ty, vx, vy, (0.5,) * c, (0.5,) * c,
                       f"image-folder:{folder}", lossy=True, skipped=skipped)
    spec = DATASETS[name]
    found = _find_local(spec, root)
    if found is None and download:
        found = _download(spec, root)
    if found is None:
        raise DataUnavailable(missing_message(name, root))
    (tx, ty, vx, vy), source, lossy, skipped = found
    return Dataset(spec.name, spec.classes, tx, ty, vx, vy, spec.mean, spec.std, source, lossy, skipped)


def _image_folder_dirs(spec: DatasetSpec, root: Path) -> list[Path]:
    env = os.environ.get("CNNVIZ_CIFAR10_DIR") if spec.name == "cifar10" else None
    return [Path(p) for p in (env, root / spec.folder) if p]


def _find_local(spec: DatasetSpec, root: Path):
    """(tensors, source, lossy, skipped) from the first local source that has the files, or None."""
    if spec.name == "fashion-mnist":
        for folder, label in ((root / "FashionMNIST" / "raw", "torchvision"),
                              (DEBIAN_FASHION_MNIST, "debian")):
            t = _from_idx_folder(folder)
            if t is not None:
                return t, f"{label}:{folder}", False, 0
    if spec.name == "cifar10":
        t = _from_cifar_batches(root / "cifar-10-batches-py")
        if t is not None:
            return t, f"torchvision:{root / 'cifar-10-batches-py'}", False, 0
    for folder in _image_folder_dirs(spec, root):
        if (folder / "train").is_dir() and (folder / "test").is_dir():
            tx, ty, vx, vy, _, skipped = read_image_folder(folder, spec.shape[0], spec.shape[1:], spec.classes)
            return (tx, ty, vx, vy), f"image-folder:{folder}", True, skipped
    return None


def _download(spec: DatasetSpec, root: Path):
    """torchvision's download (needs the internet); None when offline."""
    try:
        import torchvision.datasets as tvd

        cls = {"fashion-mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}[spec.name]
        root.mkdir(parents=True, exist_ok=True)
        cls(str(root), train=True, download=True)
        cls(str(root), train=False, download=True)
    except Exception:  # noqa: BLE001 - offline, DNS failure, HTTP error: all mean "not this way"
        return None
    return _find_local(spec, root)


def missing_message(name: str, root: Path | None = None) -> str:
    root = root or data_dir()
    spec = DATASETS[name]
    ways = [f"go online once so torchvision can download it into {root}",
            f"copy torchvision's files into {root} ("
            + ("FashionMNIST/raw/*-ubyte.gz" if name == "fashion-mnist" else "cifar-10-batches-py/") + ")"]
    if name == "fashion-mnist":
        ways.append("install Debian's package: apt-get install dataset-fashion-mnist")
    ways.append(f"unpack an image-folder copy to {root / spec.folder}/{{train,test}}/<class>/*.jpg"
                + (" (e.g. tar xzf cifar10-jpg.tar.gz -C data/)" if name == "cifar10" else ""))
    return f"{name} not found on this machine. To get it: " + "; or ".join(ways) + "."


def available_sources(root: Path | None = None) -> dict[str, str | None]:
    """For each registered dataset, the local source that would be used (None if none), without decoding."""
    root = Path(root) if root is not None else data_dir()
    out = {}
    for name, spec in DATASETS.items():
        cache = _cache_path(name, root)
        src = _cached_source(cache) if cache.is_file() else None
        if src is not None:
            src = f"{src} (decoded copy: {cache})"
        elif name == "fashion-mnist":
            for folder, label in ((root / "FashionMNIST" / "raw", "torchvision"), (DEBIAN_FASHION_MNIST, "debian")):
                if _find_idx(folder, "t10k-labels-idx1-ubyte"):
                    src = f"{label}:{folder}"
                    break
        elif (root / "cifar-10-batches-py" / "data_batch_1").is_file():
            src = f"torchvision:{root / 'cifar-10-batches-py'}"
        if src is None:
            for folder in _image_folder_dirs(spec, root):
                if (folder / "test").is_dir():
                    src = f"image-folder:{folder}"
                    break
        out[name] = src
    return out


def _cached_source(cache: Path) -> str | None:
    """Where a cached dataset was decoded from, None if the cache is unreadable (loading rebuilds it from
    the sources, so they are what counts). The tensors are memory-mapped, not read: ~2 ms."""
    try:
        return str(torch.load(cache, weights_only=True, mmap=True)["source"])
    except Exception:  # noqa: BLE001 - any unreadable file
        return None
