"""Real datasets on disk: the registry `optbench data prepare` runs, and the loaders workloads call.

Each dataset lives in its own folder under the data directory and is complete when it exists:

- `cifar10/`: `{train,test}_{images,labels}.npy` (images NCHW uint8, labels uint8) and
  `manifest.json`, converted from the canonical `cifar-10-python.tar.gz` (MD5 pinned below). The
  folder is built next to the target and renamed into place, so a crash leaves no half dataset; the
  tarball stays in `downloads/` so a re-run does not fetch it again. An existing `cifar10/` that is
  not complete is replaced only when its manifest names every file in it (`harness.outputs`):
  a folder holding anything else is refused before any download.
- `fineweb10B/`: the NanoGPT speedrun's GPT-2 token shards as published (`fineweb_val_000000.bin`,
  `fineweb_train_000001.bin`, ...), each checked against the sha256 and size in the dataset
  host's file listing and against its shard header before it gets its final name.

A `mirror` base URL replaces the origin of every canonical URL (the path is kept). CIFAR-10's MD5
always comes from this file; FineWeb's sha256s come from the listing, fetched from the mirror too.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tarfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

import numpy as np

from harness.errors import UsageError
from harness.outputs import OutputKind, check_output, check_writable_folder, foreign_files
from workloads.download import Checksum, HashAlgorithm, download, fetch_bytes, file_digest
from workloads.shards import read_shard

__all__ = [
    "CIFAR10_SOURCE",
    "DATASETS",
    "FINEWEB_FILE_URL",
    "FINEWEB_LISTING_URL",
    "Cifar10Arrays",
    "Cifar10Source",
    "cifar10_arrays",
    "fineweb_shards",
    "prepare",
]


@dataclass(frozen=True, slots=True)
class Cifar10Source:
    """Where CIFAR-10 comes from and what it must hold.

    Attributes:
      url: the canonical tarball URL (a mirror replaces only its origin).
      md5: the published MD5 of the tarball.
      size_bytes: its published size, or None to skip the size check.
      train_images: images the five training batches hold together, or None for any number.
      test_images: images the test batch holds, or None for any number.
    """

    url: str
    md5: str
    size_bytes: int | None
    train_images: int | None
    test_images: int | None


CIFAR10_SOURCE = Cifar10Source(
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
    size_bytes=170498071,
    train_images=50000,
    test_images=10000,
)

# One FineWeb10B file ({name}: its file name), and the host's JSON tree listing, which publishes
# each file's LFS sha256 and size.
FINEWEB_FILE_URL = "https://huggingface.co/datasets/kjj0/fineweb10B-gpt2/resolve/main/{name}"
FINEWEB_LISTING_URL = "https://huggingface.co/api/datasets/kjj0/fineweb10B-gpt2/tree/main"

_CIFAR10_DIR = "cifar10"
_CIFAR10_MEMBER_DIR = "cifar-10-batches-py"
_CIFAR10_PIXELS = 3 * 32 * 32
_CIFAR10_CLASSES = 10
_FINEWEB_DIR = "fineweb10B"
_FINEWEB_VAL = "fineweb_val_000000.bin"
_FINEWEB_TRAIN = "fineweb_train_{index:06d}.bin"
_DATASET_DIRS = {"cifar10": _CIFAR10_DIR, "fineweb10B": _FINEWEB_DIR}


class Cifar10Arrays(NamedTuple):
    """CIFAR-10 as four read-only arrays (memory-mapped from the prepared `.npy` files)."""

    train_images: np.ndarray  # (50000, 3, 32, 32) uint8, NCHW
    train_labels: np.ndarray  # (50000,) uint8
    test_images: np.ndarray  # (10000, 3, 32, 32) uint8
    test_labels: np.ndarray  # (10000,) uint8


def cifar10_arrays(data_dir: Path) -> Cifar10Arrays:
    """The prepared CIFAR-10 arrays under `data_dir`, memory-mapped.

    Raises:
      UsageError: naming the prepare command, when the dataset is missing or its shapes are wrong.
    """
    folder = Path(data_dir) / _CIFAR10_DIR
    command = f"run `optbench data prepare cifar10 --dir {data_dir}`"
    paths = [folder / f"{field}.npy" for field in Cifar10Arrays._fields]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise UsageError(f"CIFAR-10 is not prepared in {data_dir} (no {missing[0]}): {command}")
    arrays = Cifar10Arrays(*(np.load(path, mmap_mode="r") for path in paths))
    for images, labels in (arrays[:2], arrays[2:]):
        if images.shape[1:] != (3, 32, 32) or labels.shape != images.shape[:1]:
            shapes = f"images {images.shape}, labels {labels.shape}"
            raise UsageError(f"CIFAR-10 in {folder} is damaged ({shapes}): delete it and {command}")
    return arrays


def fineweb_shards(data_dir: Path) -> tuple[list[Path], Path]:
    """The prepared FineWeb10B token shards under `data_dir`: (sorted train shards, val shard).

    Raises:
      UsageError: naming the prepare command, when the val shard or every train shard is missing.
    """
    folder = Path(data_dir) / _FINEWEB_DIR
    val = folder / _FINEWEB_VAL
    train = sorted(folder.glob("fineweb_train_[0-9][0-9][0-9][0-9][0-9][0-9].bin"))
    if not val.is_file() or not train:
        what = val.name if not val.is_file() else "train shard"
        raise UsageError(
            f"FineWeb10B is not prepared in {data_dir} (no {what}): run "
            f"`optbench data prepare fineweb10B --dir {data_dir} --train-shards K`"
        )
    return train, val


def prepare(name: str, data_dir: Path, *, train_shards: int = 1, mirror: str | None = None) -> Path:
    """Downloads, verifies and converts dataset `name` under `data_dir`; returns its folder.

    Args:
      name: a key of `DATASETS`.
      data_dir: the data directory; created when missing.
      train_shards: FineWeb10B train shards to fetch (1..K); ignored by CIFAR-10.
      mirror: a base URL such as `http://mirror.internal:8000` that replaces the origin of every
        canonical URL.

    Raises:
      UsageError: for an unknown name, a bad option, or a download or file that does not verify.
    """
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r} (known: {', '.join(sorted(DATASETS))})")
    if train_shards < 1:
        raise UsageError(f"--train-shards must be >= 1, got {train_shards}")
    if mirror is not None and urlsplit(mirror).scheme not in ("http", "https"):
        raise UsageError(f"--mirror {mirror!r}: expected an http:// or https:// base URL")
    _check_data_dir(name, Path(data_dir))
    return DATASETS[name](Path(data_dir), train_shards=train_shards, mirror=mirror)


def _check_data_dir(name: str, data_dir: Path) -> None:
    """Refuses a `--dir` that dataset `name` cannot be prepared in, before any download: the
    folder (or what it lies under) is a file or cannot be written, or the dataset's folder or
    `downloads/` in it is a file."""
    check_writable_folder(data_dir, "--dir")
    for folder in (data_dir / _DATASET_DIRS[name], data_dir / "downloads"):
        if os.path.lexists(folder) and not folder.is_dir():
            raise UsageError(f"--dir {data_dir}: {folder} is a file, not a folder")


def _mirrored(url: str, mirror: str | None) -> str:
    """`url` with its scheme and host replaced by `mirror` (path and query kept)."""
    if mirror is None:
        return url
    parts = urlsplit(url)
    return mirror.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")


# -- CIFAR-10 -----------------------------------------------------------------------------------


def _prepare_cifar10(data_dir: Path, *, train_shards: int, mirror: str | None) -> Path:
    source = CIFAR10_SOURCE  # read at call time, so tests can substitute a source
    folder = data_dir / _CIFAR10_DIR
    if _cifar10_is_complete(folder, source):
        return folder
    check_output(folder, _CIFAR10_FOLDER, "--dir")  # it is replaced below: only if it is ours
    url = _mirrored(source.url, mirror)
    tarball = download(
        url,
        data_dir / "downloads" / Path(urlsplit(source.url).path).name,
        checksum=Checksum(HashAlgorithm.MD5, source.md5),
        expected_size_bytes=source.size_bytes,
    )
    building = data_dir / f".{_CIFAR10_DIR}.tmp-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    try:
        _convert_cifar10(tarball, building, source, url)
        stale = data_dir / f".{_CIFAR10_DIR}.old-{os.getpid()}"
        if folder.exists():
            os.replace(folder, stale)
        os.replace(building, folder)
        shutil.rmtree(stale, ignore_errors=True)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return folder


def _cifar10_strangers(folder: Path) -> list[str]:
    """The files in `folder` that are not part of a CIFAR-10 conversion optbench wrote: its
    manifest.json names every file it holds (the mark of `harness.outputs`)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        listed = {*manifest["files"], "manifest.json"} if "md5" in manifest else set()
    except (OSError, ValueError, KeyError, TypeError):
        listed = set()  # no manifest of ours: nothing in the folder is known to be optbench's
    return foreign_files(folder, listed)


_CIFAR10_FOLDER = OutputKind("CIFAR-10 folder", is_folder=True, strangers=_cifar10_strangers)


def _cifar10_is_complete(folder: Path, source: Cifar10Source) -> bool:
    """Whether `folder` holds a conversion of this source whose files match their manifest."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        files = manifest["files"]
        expected_names = {f"{field}.npy" for field in Cifar10Arrays._fields}
        if manifest["md5"] != source.md5 or set(files) != expected_names:
            return False
        sha256 = {name: file_digest(folder / name, HashAlgorithm.SHA256) for name in files}
        return all(sha256[name] == entry["sha256"] for name, entry in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _convert_cifar10(tarball: Path, out: Path, source: Cifar10Source, url: str) -> None:
    """Writes the four `.npy` files and `manifest.json` of the tarball into `out`."""
    with tarfile.open(tarball, "r:gz") as tar:
        meta = _unpickle_member(tar, "batches.meta")
        label_names = meta.get(b"label_names") if isinstance(meta, dict) else None
        if not isinstance(label_names, list) or len(label_names) != _CIFAR10_CLASSES:
            raise _corrupt("batches.meta", f"expected {_CIFAR10_CLASSES} label_names")
        train = [_cifar10_batch(tar, f"data_batch_{i}") for i in range(1, 6)]
        test = _cifar10_batch(tar, "test_batch")
    arrays = {
        "train_images": np.concatenate([images for images, _ in train]),
        "train_labels": np.concatenate([labels for _, labels in train]),
        "test_images": test[0],
        "test_labels": test[1],
    }
    for split, expected in (("train", source.train_images), ("test", source.test_images)):
        held = len(arrays[f"{split}_labels"])
        if expected is not None and held != expected:
            raise _corrupt(f"{split} batches", f"hold {held} images, expected {expected}")
    files = {}
    for field, array in arrays.items():
        path = out / f"{field}.npy"
        np.save(path, array)
        files[path.name] = {
            "sha256": file_digest(path, HashAlgorithm.SHA256),
            "shape": list(array.shape),
            "dtype": str(array.dtype),
        }
    manifest = {
        "source_url": source.url,
        "downloaded_from": url,
        "md5": source.md5,
        "label_names": [n.decode() if isinstance(n, bytes) else str(n) for n in label_names],
        "layout": "images NCHW uint8, labels uint8",
        "files": files,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _cifar10_batch(tar: tarfile.TarFile, member: str) -> tuple[np.ndarray, np.ndarray]:
    """The (images NCHW uint8, labels uint8) of one pickled batch, validated."""
    batch = _unpickle_member(tar, member)
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise _corrupt(member, "expected a dict with b'data' and b'labels'")
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    if labels.ndim != 1 or labels.size == 0 or labels.dtype.kind not in "iu":
        raise _corrupt(member, f"labels must be a non-empty list of ints, got {labels.dtype}")
    if labels.min() < 0 or labels.max() >= _CIFAR10_CLASSES:
        raise _corrupt(member, f"labels outside 0..{_CIFAR10_CLASSES - 1}")
    expected_shape = (len(labels), _CIFAR10_PIXELS)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape != expected_shape:
        got = f"{data.shape} {data.dtype}" if isinstance(data, np.ndarray) else type(data).__name__
        raise _corrupt(member, f"data is {got}, expected {expected_shape} uint8")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.uint8)


# The globals a CIFAR-10 batch pickle needs (a numpy array); any other global is refused, so the
# pickle cannot run code. The arrays' `_reconstruct` moved from numpy.core to numpy._core in 2.0.
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing global {module}.{name}")
        return _PICKLE_GLOBALS[module, name]


def _unpickle_member(tar: tarfile.TarFile, name: str) -> Any:
    """Unpickles one regular member of the archive from its bytes; nothing is extracted."""
    try:
        member = tar.getmember(f"{_CIFAR10_MEMBER_DIR}/{name}")
    except KeyError:
        raise _corrupt(name, "missing") from None
    stream = tar.extractfile(member) if member.isfile() else None
    if stream is None:
        raise _corrupt(name, "not a regular file")
    with stream:
        try:
            return _ArrayOnlyUnpickler(stream, encoding="bytes").load()
        except Exception as e:  # a broken pickle raises any of a dozen types
            raise _corrupt(name, f"cannot unpickle ({type(e).__name__}: {e})") from None


def _corrupt(member: str, what: str) -> UsageError:
    return UsageError(f"corrupt CIFAR-10 archive: {_CIFAR10_MEMBER_DIR}/{member}: {what}")


# -- FineWeb10B ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PublishedFile:
    sha256: str
    size_bytes: int


def _prepare_fineweb10b(data_dir: Path, *, train_shards: int, mirror: str | None) -> Path:
    folder = data_dir / _FINEWEB_DIR
    names = [_FINEWEB_VAL, *(_FINEWEB_TRAIN.format(index=i) for i in range(1, train_shards + 1))]
    listing_url = _mirrored(FINEWEB_LISTING_URL, mirror)
    published = _published_files(listing_url)
    for name in names:  # all checked before any download starts
        if name not in published:
            held = sum(path.startswith("fineweb_train_") for path in published)
            raise UsageError(
                f"{name} is not in the published listing {listing_url} (it gives checksums for "
                f"{held} train shards: ask for --train-shards {held} or fewer)"
                if held
                else f"{name} is not in the published listing {listing_url}"
            )
    for name in names:
        url = _mirrored(FINEWEB_FILE_URL.format(name=name), mirror)
        download(
            url,
            folder / name,
            checksum=Checksum(HashAlgorithm.SHA256, published[name].sha256),
            expected_size_bytes=published[name].size_bytes,
            check_file=partial(_check_shard, url=url),
        )
    return folder


def _published_files(listing_url: str) -> dict[str, _PublishedFile]:
    """The LFS sha256 and size of every file in the host's JSON tree listing, by path."""
    raw = fetch_bytes(listing_url)
    try:
        entries = json.loads(raw)
        return {
            str(entry["path"]): _PublishedFile(str(entry["lfs"]["oid"]), int(entry["lfs"]["size"]))
            for entry in entries
            if entry.get("type") == "file" and entry.get("lfs")
        }
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise UsageError(
            f"{listing_url}: not a file listing with LFS checksums ({type(e).__name__}: {e})"
        ) from None


def _check_shard(part: Path, *, url: str) -> None:
    """Raises `UsageError` unless `part` has a speedrun header and the size it announces."""
    try:
        read_shard(part)
    except UsageError as e:
        raise UsageError(f"{url}: not a speedrun token shard, download deleted: {e}") from None


class _Preparer(Protocol):
    def __call__(self, data_dir: Path, *, train_shards: int, mirror: str | None) -> Path: ...


DATASETS: dict[str, _Preparer] = {
    "cifar10": _prepare_cifar10,
    "fineweb10B": _prepare_fineweb10b,
}
