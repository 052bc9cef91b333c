"""Tests of senet_lib.data and senet_lib.safe_pickle, on small fake CIFAR folders (no network)."""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from senet_lib import data as D
from senet_lib.safe_pickle import CorruptFileError, UnsafePickleError

CPU = torch.device("cpu")


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real data folder, no Kaggle tree, no SENET_DATASET, and downloads fail as if offline."""
    home = tmp_path / "data_home"
    home.mkdir()
    monkeypatch.setenv("SENET_DATA_DIR", str(home))
    monkeypatch.delenv("SENET_DATASET", raising=False)
    monkeypatch.setattr(D.cifar, "REPO_ROOT", None)
    monkeypatch.setattr(D.cifar, "KAGGLE_INPUT", tmp_path / "no_kaggle")

    def offline(name, dest):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(D.cifar, "_download", offline)
    return home


def _dump(path: Path, obj: object, protocol: int = 2) -> None:
    with path.open("wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)


@pytest.fixture
def fake10(tmp_path, fake_cifar):
    root = tmp_path / "fake10"
    return root, fake_cifar(root, "cifar10")


def _load_quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", D.DataWarning)
        return D.load_dataset(*args, **kwargs)


def _tiny(n_train=40, n_test=20, seed=0) -> D.ImageDataset:
    return D.make_synthetic(n_train, n_test, seed=seed)


def _dataset_from(images: torch.Tensor, labels: torch.Tensor, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)):
    split = D.ImageSplit(images, labels)
    return D.ImageDataset(
        "synthetic", [str(i) for i in range(10)], split, split, mean, std, "test", True, "test"
    )


# --------------------------------------------------------------------------- CIFAR reading
@pytest.mark.parametrize("bytes_keys", [True, False], ids=["bytes-keys", "str-keys"])
def test_fake_cifar10_loads_from_root(tmp_path, bytes_keys, fake_cifar):
    written = fake_cifar(tmp_path / "r", "cifar10", bytes_keys=bytes_keys)
    ds = _load_quiet("cifar10", root=tmp_path / "r")
    assert ds.name == "cifar10" and not ds.synthetic and ds.num_classes == 10
    assert ds.classes == [f"c{i}" for i in range(10)]
    assert ds.train.images.dtype == torch.uint8 and list(ds.train.images.shape) == [150, 3, 32, 32]
    assert ds.train.labels.dtype == torch.int64
    assert np.array_equal(ds.train.images.numpy(), written["train"][0])
    assert np.array_equal(ds.test.labels.numpy(), written["test"][1])
    assert ds.source == str(tmp_path / "r" / "cifar-10-batches-py")
    pixels = written["train"][0].astype(np.float64) / 255
    assert np.allclose(ds.mean, pixels.mean(axis=(0, 2, 3)), atol=1e-5)
    assert np.allclose(ds.std, pixels.std(axis=(0, 2, 3)), atol=1e-5)


def test_fake_cifar100_loads_from_data_dir(isolated, fake_cifar):
    written = fake_cifar(isolated, "cifar100", per_file=200)
    ds = _load_quiet("cifar100")
    assert ds.num_classes == 100 and ds.classes[5] == "f5"
    assert np.array_equal(ds.train.labels.numpy(), written["train"][1])
    assert D.find_cifar("cifar100") == isolated
    # superclasses kept: names from the meta file, labels per image, through a subset too
    assert ds.coarse_classes == [f"super{i}" for i in range(20)]
    assert np.array_equal(ds.test.coarse_labels.numpy(), written["test"][2])
    sub = ds.subset(100, 100)
    assert sub.coarse_classes == ds.coarse_classes
    assert torch.equal(sub.train.coarse_labels, sub.train.labels // 5)
    assert ds.superclass_of()["f7"] == "super1" and len(ds.superclass_of()) == 100


def test_cifar100_without_coarse_labels_and_cifar10_have_no_superclasses(tmp_path, fake_cifar):
    fake_cifar(tmp_path / "a", "cifar100", per_file=100, coarse=False)
    ds = _load_quiet("cifar100", root=tmp_path / "a")
    assert ds.coarse_classes is None and ds.train.coarse_labels is None and ds.superclass_of() is None
    fake_cifar(tmp_path / "b", "cifar10", per_file=10)
    assert _load_quiet("cifar10", root=tmp_path / "b").superclass_of() is None


def test_cifar100_superclass_out_of_range_is_named(tmp_path, fake_cifar):
    fake = fake_cifar(tmp_path, "cifar100", per_file=100)
    batch = pickle.loads((fake.folder / "test").read_bytes())
    batch[b"coarse_labels"][3] = 20
    _dump(fake.folder / "test", batch)
    with pytest.raises(CorruptFileError, match=r"'coarse_labels' fall outside 0\.\.19"):
        _load_quiet("cifar100", root=tmp_path)


def test_root_may_point_at_the_layout_folder_itself(fake10):
    root, _ = fake10
    assert D.find_cifar("cifar10", root / "cifar-10-batches-py") == root


def test_incomplete_copy_is_not_found(fake10):
    root, _ = fake10
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    assert D.find_cifar("cifar10", root) is None


def test_checksum_mismatch_warns_once_and_labels(fake10):
    root, _ = fake10
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = D.load_dataset("cifar10", root=root)
    ours = [w for w in caught if issubclass(w.category, D.DataWarning)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert "differ from the official" in str(ours[0].message)
    assert ds.label == "CIFAR-10 (checksums differ from the official files)"


def test_official_checksums_give_plain_label(fake10, monkeypatch):
    root, _ = fake10
    folder = root / "cifar-10-batches-py"
    real = D.cifar._spec("cifar10")
    md5 = {f: hashlib.md5((folder / f).read_bytes()).hexdigest() for f in real.files}
    monkeypatch.setattr(D.cifar, "_spec", lambda name: replace(real, md5=md5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = D.load_dataset("cifar10", root=root)
    assert ds.label == "CIFAR-10"


def test_official_checksums_come_from_torchvision():
    from torchvision.datasets import CIFAR10

    spec = D.cifar._spec("cifar10")
    assert spec.md5["data_batch_1"] == dict(CIFAR10.train_list)["data_batch_1"]
    assert set(spec.files) == {*(f for f, _ in CIFAR10.train_list), "test_batch", "batches.meta"}


# --------------------------------------------------------------------------- safety
class _Exploit:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("func", [os.system, eval], ids=["os.system", "eval"])
def test_malicious_pickle_is_refused_before_running(fake10, tmp_path, protocol, func):
    root, _ = fake10
    marker = tmp_path / "pwned"
    code = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w').close()"
    payload = {b"data": _Exploit(func, code), b"labels": [0]}
    _dump(root / "cifar-10-batches-py" / "data_batch_2", payload, protocol)
    with pytest.raises(UnsafePickleError) as info:
        _load_quiet("cifar10", root=root)
    message = str(info.value)
    assert "refusing to load" in message and "data_batch_2" in message
    assert ("system" if func is os.system else "eval") in message
    assert "delete it and download again" in message
    assert not marker.exists()


def test_truncated_file_names_the_file(fake10):
    root, _ = fake10
    path = root / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(
        CorruptFileError, match=r"test_batch is truncated or corrupt.*delete it and download again"
    ):
        _load_quiet("cifar10", root=root)


@pytest.mark.parametrize(
    "payload, problem",
    [
        ({b"labels": [0]}, "'data' is not a uint8 array"),
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, "'data' is not a uint8 array"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "are not 2 integers"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "outside 0..9"),
        ([1, 2, 3], "not the dict"),
    ],
)
def test_wrongly_shaped_batch_is_rejected(fake10, payload, problem):
    root, _ = fake10
    _dump(root / "cifar-10-batches-py" / "data_batch_4", payload)
    with pytest.raises(CorruptFileError, match=problem):
        _load_quiet("cifar10", root=root)


# --------------------------------------------------------------------------- finding, offline, auto
def test_search_dirs_order_and_kaggle_nesting(tmp_path, monkeypatch, isolated, fake_cifar):
    kaggle = tmp_path / "kaggle_input"
    fake_cifar(kaggle / "some-dataset" / "v2", "cifar10", per_file=10)
    monkeypatch.setattr(D.cifar, "KAGGLE_INPUT", kaggle)
    monkeypatch.setattr(D.cifar, "REPO_ROOT", tmp_path / "repo")
    dirs = D.search_dirs("cifar10")
    assert dirs[:3] == [isolated, tmp_path / "repo" / "data", kaggle]
    assert kaggle / "some-dataset" / "v2" in dirs
    assert D.find_cifar("cifar10") == kaggle / "some-dataset" / "v2"
    assert D.search_dirs("cifar10", root=tmp_path / "elsewhere")[0] == tmp_path / "elsewhere"


def test_offline_without_data_names_the_folders(isolated):
    with pytest.raises(FileNotFoundError) as info:
        D.load_dataset("cifar10")
    message = str(info.value)
    for folder in D.search_dirs("cifar10"):
        assert str(folder) in message
    assert "Name or service not known" in message
    assert "cifar-10-batches-py" in message and 'load_dataset("synthetic")' in message


def test_download_false_does_not_try(isolated, monkeypatch):
    def fail(*_):
        raise AssertionError("download attempted")

    monkeypatch.setattr(D.cifar, "_download", fail)
    with pytest.raises(FileNotFoundError, match="download=False"):
        D.load_dataset("cifar100", download=False)


def test_auto_falls_back_to_synthetic_loudly(capsys):
    with pytest.warns(D.DataWarning, match="synthetic"):
        ds = D.load_dataset("auto", synthetic_size=(30, 20))
    assert ds.synthetic and ds.label == "synthetic shapes (not CIFAR)" and len(ds.train) == 30
    assert "USING SYNTHETIC DATA" in capsys.readouterr().out


def test_auto_uses_cifar10_when_present(fake10):
    root, _ = fake10
    ds = _load_quiet("auto", root=root)
    assert ds.name == "cifar10"


def test_senet_dataset_overrides_auto_only(monkeypatch, fake10):
    root, _ = fake10
    monkeypatch.setenv("SENET_DATASET", "synthetic")
    assert D.load_dataset("auto", root=root, synthetic_size=(20, 10)).synthetic
    assert _load_quiet("cifar10", root=root).name == "cifar10"
    monkeypatch.setenv("SENET_DATASET", "imagenet")
    with pytest.raises(ValueError, match="imagenet"):
        D.load_dataset()


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="cifar10, cifar100, synthetic"):
        D.load_dataset("mnist")


def test_data_status_reports_found_and_missing(fake10):
    root, _ = fake10
    status = D.data_status(root)
    assert f"found in {root / 'cifar-10-batches-py'}" in status
    assert re.search(r"CIFAR-100 *: not found", status)
    assert "auto" in status.splitlines()[-1] and "CIFAR-10 from" in status


# --------------------------------------------------------------------------- synthetic data
def test_synthetic_is_deterministic_and_balanced():
    a, b, c = _tiny(200, 100, seed=3), _tiny(200, 100, seed=3), _tiny(200, 100, seed=4)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(a.train.images, c.train.images)
    assert a.train.labels.bincount().tolist() == [20] * 10
    assert torch.equal(_tiny(50, 100, seed=3).test.images, a.test.images)  # test split independent of n_train
    assert a.synthetic and a.source == "procedurally generated (seed 3)"


def test_synthetic_needs_both_shape_and_colour():
    names = _tiny(10, 10).classes
    assert len(set(names)) == 10
    colours = [n.split()[0] for n in names]
    shapes = [n.split()[1] for n in names]
    assert all(colours.count(c) == 2 for c in colours) and all(shapes.count(s) == 2 for s in shapes)
    assert len({(c, s) for c, s in zip(colours, shapes, strict=True)}) == 10


def test_synthetic_shapes_differ():
    grid = np.arange(32, dtype=np.float32) - 15.5
    u, v = np.meshgrid(grid, grid, indexing="xy")
    masks = {s: D.shape_distance(s, u, v, np.float32(10)) < 0 for s in D.SHAPES}
    for i, s in enumerate(D.SHAPES):
        for t in D.SHAPES[i + 1 :]:
            iou = (masks[s] & masks[t]).sum() / (masks[s] | masks[t]).sum()
            assert iou < 0.85 and (masks[s] ^ masks[t]).sum() >= 30, (s, t, iou)
    assert not masks["ring"][16, 16] and masks["disk"][16, 16]


def test_synthetic_colours_follow_the_class_names():
    ds = _tiny(500, 10)
    img = ds.train.images.float() / 255
    # the shape is the most saturated part of each image: average its colour per class
    sat = img.amax(1) - img.amin(1)
    fg = sat >= sat.flatten(1).quantile(0.97, dim=1)[:, None, None]
    colour = (img * fg[:, None]).sum((2, 3)) / fg.sum((1, 2))[:, None]
    per_class = torch.stack([colour[ds.train.labels == k].mean(0) for k in range(10)])
    names = [n.split()[0] for n in ds.classes]
    for i in range(10):
        for j in range(i + 1, 10):
            gap = (per_class[i] - per_class[j]).abs().max().item()
            assert (gap < 0.12) if names[i] == names[j] else (gap > 0.3), (ds.classes[i], ds.classes[j], gap)


# --------------------------------------------------------------------------- subsets
def test_balanced_indices():
    labels = torch.tensor([0] * 5 + [1] * 3 + [2] * 4)
    idx = D.balanced_indices(labels, 2, seed=1)
    assert torch.equal(idx, idx.sort().values) and labels[idx].bincount().tolist() == [2, 2, 2]
    assert torch.equal(idx, D.balanced_indices(labels, 2, seed=1))
    assert set(D.balanced_indices(labels, 1, seed=1).tolist()) <= set(idx.tolist())
    with pytest.raises(ValueError, match="only 3"):
        D.balanced_indices(labels, 4)


def test_subset_is_class_balanced():
    ds = _tiny(200, 100)
    sub = ds.subset(train=55, test=None, seed=2)
    counts = sub.train.labels.bincount(minlength=10)
    assert counts.sum() == 55 and counts.max() - counts.min() == 1
    assert len(sub.test) == 100 and sub.mean == ds.mean and sub.label == ds.label
    assert torch.equal(sub.train.images, ds.subset(55, 10, seed=2).train.images)
    with pytest.raises(ValueError, match="Cannot take 500"):
        ds.subset(500, None)


# --------------------------------------------------------------------------- loaders
def _numbered(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images (1..255, so zero padding is recognisable) and labels = their index."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen), torch.arange(n)


def _denormalise(x: torch.Tensor, ds: D.ImageDataset) -> torch.Tensor:
    mean = torch.tensor(ds.mean).view(1, 3, 1, 1)
    std = torch.tensor(ds.std).view(1, 3, 1, 1)
    return ((x * std + mean) * 255).round().to(torch.uint8)


@pytest.mark.parametrize("pipeline", ["device", "torch"])
def test_test_loader_normalises_in_order(pipeline):
    ds = _tiny(40, 25)
    _, test = D.make_loaders(ds, 10, CPU, pipeline=pipeline)
    batches = list(test)
    assert len(test) == 3 == len(batches) and test.num_samples == 25
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert x.dtype == torch.float32 and list(x.shape) == [25, 3, 32, 32] and y.dtype == torch.int64
    assert torch.equal(_denormalise(x, ds), ds.test.images) and torch.equal(y, ds.test.labels)
    assert torch.allclose(x, ds.normalize(ds.test.images), atol=1e-5)


@pytest.mark.parametrize("pipeline", ["device", "torch"])
def test_train_loader_drops_last_and_reshuffles_deterministically(pipeline):
    ds = _dataset_from(*_numbered(50))  # labels = sample index, to follow the order
    train, _ = D.make_loaders(ds, 8, CPU, pipeline=pipeline, seed=5)
    assert len(train) == 6 and train.num_samples == 50
    epoch0 = [y for _, y in train]
    epoch1 = torch.cat([y for _, y in train])
    assert len(epoch0) == 6 and all(len(y) == 8 for y in epoch0)
    epoch0 = torch.cat(epoch0)
    assert len(set(epoch0.tolist())) == 48 and not torch.equal(epoch0, epoch1)
    again, _ = D.make_loaders(ds, 8, CPU, pipeline=pipeline, seed=5)
    first = [x for x, _ in again]
    again.set_epoch(0)
    assert torch.equal(torch.cat(first), torch.cat([x for x, _ in again]))
    other, _ = D.make_loaders(ds, 8, CPU, pipeline=pipeline, seed=6)
    assert not torch.equal(torch.cat([y for _, y in other]), epoch0)


@pytest.mark.parametrize("pipeline", ["device", "torch"])
def test_crops_are_shifts_of_the_zero_padded_image(pipeline):
    images, labels = _numbered(64)
    split = D.ImageSplit(images, labels)
    cls = D.DeviceLoader if pipeline == "device" else D.TorchLoader
    loader = cls(split, 16, CPU, (0.0,) * 3, (1 / 255,) * 3, train=True, flip=False, seed=1)
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    offsets = set()
    for x, y in loader:
        raw = x.round().to(torch.uint8)  # mean 0, std 1/255: x is the raw pixel value
        for img, i in zip(raw, y.tolist(), strict=True):
            hits = [
                (r, c)
                for r in range(9)
                for c in range(9)
                if torch.equal(padded[i, :, r : r + 32, c : c + 32], img)
            ]
            assert len(hits) == 1
            offsets.add(hits[0])
    assert len(offsets) > 10  # crops really move


def test_flips_happen_about_half_the_time():
    images, labels = _numbered(400)
    loader = D.DeviceLoader(
        D.ImageSplit(images, labels), 100, CPU, (0.0,) * 3, (1 / 255,) * 3, train=True, padding=0, seed=3
    )
    flipped = 0
    for x, y in loader:
        raw = x.round().to(torch.uint8)
        same = (raw == images[y]).flatten(1).all(1)
        mirrored = (raw == images[y].flip(3)).flatten(1).all(1)
        assert torch.all(same ^ mirrored)
        flipped += int(mirrored.sum())
    assert 0.4 < flipped / 400 < 0.6


@pytest.mark.parametrize("pipeline", ["device", "torch"])
def test_cutout_zeroes_a_square(pipeline):
    n, size = 64, 8
    images = torch.full((n, 3, 32, 32), 200, dtype=torch.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    cls = D.DeviceLoader if pipeline == "device" else D.TorchLoader
    loader = cls(
        D.ImageSplit(images, torch.zeros(n)),
        16,
        CPU,
        mean,
        std,
        train=True,
        cutout=size,
        padding=0,
        flip=False,
    )
    fill = (-torch.tensor(mean) / torch.tensor(std)).view(3, 1, 1)
    full_squares = 0
    for x, _ in loader:
        for img in x:
            hole = torch.isclose(img, fill.expand_as(img), atol=1e-5)
            assert torch.equal(hole[0], hole[1]) and torch.equal(hole[0], hole[2])
            rows, cols = hole[0].any(1).nonzero().flatten(), hole[0].any(0).nonzero().flatten()
            h, w = len(rows), len(cols)
            assert 0 < h <= size and 0 < w <= size and hole[0].sum() == h * w  # one filled rectangle
            interior = rows.min() > 0 and rows.max() < 31 and cols.min() > 0 and cols.max() < 31
            assert not interior or h == w == size
            full_squares += h == w == size
            assert torch.allclose(img[~hole], normalize_one(200, mean, std, img, hole))
    assert full_squares > 10


def normalize_one(value, mean, std, img, hole):
    """The normalised value of a uint8 ``value`` at every non-hole position of ``img``."""
    per_channel = (value / 255 - torch.tensor(mean)) / torch.tensor(std)
    return per_channel.view(3, 1, 1).expand_as(img)[~hole]


def test_several_cutout_holes_remove_more():
    images = torch.full((200, 3, 32, 32), 200, dtype=torch.uint8)
    split = D.ImageSplit(images, torch.zeros(200))

    def zeroed(count):
        loader = D.DeviceLoader(
            split, 200, CPU, (0.0,) * 3, (1.0,) * 3, train=True, cutout=6, cutout_count=count, padding=0
        )
        return sum(int((x == 0).sum()) for x, _ in loader)

    assert zeroed(3) > 2 * zeroed(1)


def test_make_loaders_options():
    ds = _tiny(40, 20)
    train, test = D.make_loaders(ds, 8, CPU)  # auto = the device-resident loader, on the CPU too
    assert isinstance(train, D.DeviceLoader) and isinstance(test, D.DeviceLoader)
    train, test = D.make_loaders(ds, 8, CPU, pipeline="torch")
    assert isinstance(train, D.TorchLoader) and isinstance(test, D.TorchLoader)
    train, _ = D.make_loaders(ds, 8, CPU, pipeline="device", channels_last=True)
    x, y = next(iter(train))
    assert x.is_contiguous(memory_format=torch.channels_last) and list(x.shape) == [8, 3, 32, 32]
    with pytest.raises(ValueError, match="Unknown pipeline 'gpu'"):
        D.make_loaders(ds, 8, CPU, pipeline="gpu")
    with pytest.raises(ValueError, match="use a smaller batch_size"):
        D.make_loaders(ds, 64, CPU, pipeline="device")


def test_device_and_torch_pipelines_agree_without_augmentation():
    ds = _tiny(40, 30)
    _, dev = D.make_loaders(ds, 16, CPU, pipeline="device")
    _, tor = D.make_loaders(ds, 16, CPU, pipeline="torch")
    for (a, ya), (b, yb) in zip(dev, tor, strict=True):
        assert torch.allclose(a, b, atol=1e-5) and torch.equal(ya, yb)


def test_split_validation_message():
    with pytest.raises(ValueError, match="uint8"):
        D.ImageSplit(torch.zeros(2, 3, 32, 32), torch.zeros(2))


def test_the_lossless_pack_is_named_for_what_it_holds(tmp_path, fake_cifar):
    """Official training pixels with only test images 0-999: its label says so, and a copy that merely
    names its images the same way but holds another test split is not taken for it."""
    import pickle

    fake = fake_cifar(tmp_path, per_file=1000)
    for path in sorted(fake.folder.glob("*_batch*")):
        batch = pickle.loads(path.read_bytes())
        split = "test" if path.name == "test_batch" else "train"
        batch[b"filenames"] = [f"{split}_{i:05d}.png".encode() for i in range(1000)]
        path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.warns(D.DataWarning):
        data = D.load_dataset("cifar10", root=tmp_path)
    assert data.label == "CIFAR-10 (lossless train, official test images 0–999)"
    assert len(data.test) == 1000 and any("first 1,000 official test images" in n for n in data.notes)
    batch = pickle.loads((fake.folder / "test_batch").read_bytes())
    batch[b"filenames"], batch[b"labels"], batch[b"data"] = (
        batch[b"filenames"][:999],
        batch[b"labels"][:999],
        batch[b"data"][:999],
    )
    (fake.folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.warns(D.DataWarning):
        assert (
            D.load_dataset("cifar10", root=tmp_path).label
            == "CIFAR-10 (checksums differ from the official files)"
        )
