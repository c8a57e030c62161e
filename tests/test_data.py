"""Datasets load from real sources as uint8 tensors; broken caches and files are survived; no source is
a clear error."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import cnnviz.data as data_mod
from cnnviz.data import DataUnavailable, load_dataset, read_image_folder

def _assert_balanced_uint8(ds, shape, n_train, n_test):
    assert ds.train_x.shape == (n_train, *shape) and ds.test_x.shape == (n_test, *shape)
    assert ds.train_x.dtype == ds.test_x.dtype == torch.uint8
    assert ds.train_y.dtype == torch.int64 and ds.train_y.shape == (n_train,)
    assert len(ds.classes) == 10
    # Both datasets have exactly n/10 images of every class in each split.
    assert torch.bincount(ds.train_y, minlength=10).tolist() == [n_train // 10] * 10
    assert torch.bincount(ds.test_y, minlength=10).tolist() == [n_test // 10] * 10
    assert 0 < ds.test_x.float().mean() < 255  # real pixels, not an empty buffer


@pytest.mark.data
def test_fashion_mnist_loads_60000_and_10000_uint8_images_of_10_classes(fashion_mnist):
    _assert_balanced_uint8(fashion_mnist, (1, 28, 28), 60_000, 10_000)
    assert fashion_mnist.classes[0] == "T-shirt/top" and fashion_mnist.classes[9] == "Ankle boot"
    assert not fashion_mnist.lossy


@pytest.mark.data
def test_cifar10_loads_50000_and_10000_uint8_images_and_says_when_it_is_lossy(cifar10):
    _assert_balanced_uint8(cifar10, (3, 32, 32), 50_000, 10_000)
    assert cifar10.classes == ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                               "ship", "truck")
    # The shared copy is JPEG re-encoded: a dataset decoded from an image folder must say so.
    assert cifar10.lossy == cifar10.source.startswith("image-folder:")


@pytest.mark.data
def test_normalize_matches_torchvision_to_tensor_and_normalize(fashion_mnist):
    import torchvision.transforms as T

    image = fashion_mnist.test_x[0]  # (1, 28, 28) uint8
    expected = T.Normalize(fashion_mnist.mean, fashion_mnist.std)(T.ToTensor()(Image.fromarray(image[0].numpy())))
    torch.testing.assert_close(fashion_mnist.normalize(image[None])[0], expected)


def test_normalize_uses_each_channels_own_mean_and_std():
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    mean, std = (0.1, 0.5, 0.9), (0.5, 0.25, 0.125)
    ds = data_mod.Dataset("rgb", ("a", "b"), x, torch.zeros(4, dtype=torch.long), x, torch.zeros(4, dtype=torch.long),
                          mean, std, "test")
    expected = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(ds.normalize(x), expected)
    torch.testing.assert_close(ds.normalize(x[:1]), expected[:1])  # the factors are reused, not rebuilt


# ---- image folders and the cache (hermetic: files written here) --------------------------------

CLASSES = ("cat", "dog")


def _pixels(label: int, i: int) -> np.ndarray:
    """A distinct, exactly known 8x6 RGB image per (class, index)."""
    rng = np.random.default_rng(100 * label + i)
    return rng.integers(0, 256, size=(8, 6, 3), dtype=np.uint8)


@pytest.fixture
def image_folder(tmp_path):
    """`folder/{train,test}/{cat,dog}/*.png` (3 train and 2 test images per class) + one broken .jpg."""
    folder = tmp_path / "pets"
    for split, n in (("train", 3), ("test", 2)):
        for label, cls in enumerate(CLASSES):
            (folder / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(_pixels(label, i)).save(folder / split / cls / f"{i:02d}.png")
    (folder / "train" / "dog" / "broken.jpg").write_bytes(b"this is not a JPEG" * 10)
    return folder


def test_image_folder_loads_every_readable_image_and_counts_the_broken_one(image_folder, tmp_path):
    ds = load_dataset(str(image_folder), root=tmp_path / "root", download=False)
    assert ds.classes == CLASSES
    assert ds.skipped == 1
    assert ds.train_x.shape == (6, 3, 8, 6) and ds.test_x.shape == (4, 3, 8, 6)
    # One image of each class in turn: a prefix ("the first N images") holds every class.
    assert ds.train_y.tolist() == [0, 1, 0, 1, 0, 1] and ds.test_y.tolist() == [0, 1, 0, 1]
    # PNG is lossless: the pixels are exactly those written, in (C, H, W) order; dog 01 is the 4th image.
    assert np.array_equal(ds.train_x[3].permute(1, 2, 0).numpy(), _pixels(1, 1))
    assert ds.lossy and ds.source.startswith("image-folder:")


def test_image_folder_with_only_broken_files_is_data_unavailable(tmp_path):
    for split in ("train", "test"):
        (tmp_path / "bad" / split / "x").mkdir(parents=True)
        (tmp_path / "bad" / split / "x" / "a.jpg").write_bytes(b"\x00" * 64)
    with pytest.raises(DataUnavailable, match="no readable images"):
        read_image_folder(tmp_path / "bad")


def test_dataset_is_read_from_its_cache_once_decoded(image_folder, tmp_path, monkeypatch):
    root = tmp_path / "root"
    first = load_dataset(str(image_folder), root=root, download=False)
    assert list((root / "cnnviz-cache").glob("*.pt"))
    for p in sorted(image_folder.rglob("*"), reverse=True):  # the source is gone...
        p.unlink() if p.is_file() else p.rmdir()
    monkeypatch.setattr(data_mod, "_MEMORY", {})  # ...and this is a new process
    again = load_dataset(str(image_folder), root=root, download=False)
    assert torch.equal(again.train_x, first.train_x) and again.skipped == 1


def test_a_corrupt_cache_file_is_rebuilt_from_the_source(image_folder, tmp_path, monkeypatch):
    root = tmp_path / "root"
    first = load_dataset(str(image_folder), root=root, download=False)
    (cache,) = (root / "cnnviz-cache").glob("*.pt")
    cache.write_bytes(b"\x80\x02garbage" + bytes(range(256)))
    monkeypatch.setattr(data_mod, "_MEMORY", {})
    again = load_dataset(str(image_folder), root=root, download=False)
    assert torch.equal(again.train_x, first.train_x) and torch.equal(again.test_y, first.test_y)
    rebuilt = torch.load(cache, weights_only=True)  # a valid cache again
    assert torch.equal(rebuilt["train_x"], first.train_x)


def test_available_sources_name_where_a_cached_dataset_came_from(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNVIZ_CIFAR10_DIR", raising=False)
    root = tmp_path / "root"
    tiny = torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64)
    ds = data_mod.Dataset("cifar10", ("a", "b"), *tiny, *tiny, (0.5,) * 3, (0.25,) * 3,
                          source="image-folder:/somewhere/cifar10-jpg", lossy=True)
    cache = data_mod._cache_path("cifar10", root)
    data_mod._write_cache(ds, cache)
    shown = data_mod.available_sources(root)["cifar10"]
    assert shown == f"image-folder:/somewhere/cifar10-jpg (decoded copy: {cache})"
    cache.write_bytes(b"not a torch file")  # unreadable, and no source to rebuild it from: not available
    assert data_mod.available_sources(root)["cifar10"] is None


# ---- no source at all --------------------------------------------------------------------------

@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """An empty data root, no Debian package and no CIFAR-10 folder from the environment."""
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-package")
    monkeypatch.delenv("CNNVIZ_CIFAR10_DIR", raising=False)
    root = tmp_path / "empty"
    root.mkdir()
    return root


def test_missing_fashion_mnist_raises_a_message_naming_every_way_to_get_it(nowhere):
    with pytest.raises(DataUnavailable) as err:
        load_dataset("fashion-mnist", root=nowhere, download=False)
    msg = str(err.value)
    for way in ("download", "FashionMNIST/raw", "apt-get install dataset-fashion-mnist",
                str(nowhere / "fashion-mnist-img")):
        assert way in msg, way


def test_missing_cifar10_raises_a_message_naming_every_way_to_get_it(nowhere):
    with pytest.raises(DataUnavailable) as err:
        load_dataset("cifar10", root=nowhere, download=False)
    msg = str(err.value)
    for way in ("download", "cifar-10-batches-py", str(nowhere / "cifar10-jpg"), "cifar10-jpg.tar.gz"):
        assert way in msg, way


def test_unknown_dataset_name_lists_the_known_ones(nowhere):
    with pytest.raises(DataUnavailable) as err:
        load_dataset("imagenet", root=nowhere, download=False)
    assert "fashion-mnist" in str(err.value) and "cifar10" in str(err.value)
