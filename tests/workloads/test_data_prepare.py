"""`optbench data prepare` against a loopback HTTP server: downloads resume, verify and convert.

The server (`tests/workloads/loopback.py`) serves generated files in the canonical formats (a small
CIFAR-10 tarball, speedrun token shards and the host's tree listing) on 127.0.0.1 only, honours
`Range: bytes=N-`, records every request, and can cut a response in half to play a dropped
connection.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness.errors import UsageError
from sweeps.cli import main
from tests.workloads.loopback import (
    CIFAR_PATH,
    IMAGES_PER_BATCH,
    FakeCifar,
    Loopback,
    make_cifar,
    serve,
    serve_cifar,
    serve_fineweb,
    shard_bytes,
)
from workloads import datasets
from workloads.download import Checksum, HashAlgorithm, download
from workloads.shards import read_shard


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Loopback]:
    with serve(monkeypatch) as state:
        yield state


# -- CIFAR-10 -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_cifar() -> FakeCifar:
    return make_cifar(seed=0)


@pytest.fixture
def cifar(server: Loopback, fake_cifar: FakeCifar, monkeypatch: pytest.MonkeyPatch) -> FakeCifar:
    """Serves the fake tarball and makes it the expected source (its MD5, size and counts)."""
    serve_cifar(server, fake_cifar, monkeypatch)
    return fake_cifar


def _assert_cifar_prepared(data_dir: Path, fake: FakeCifar) -> None:
    arrays = datasets.cifar10_arrays(data_dir)
    for got, expected in zip(arrays, fake.arrays, strict=True):
        assert got.dtype == np.uint8 and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
    assert arrays.train_images.shape == (5 * IMAGES_PER_BATCH, 3, 32, 32)  # NCHW
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar10", "downloads"]  # no temp folder
    assert [p.name for p in (data_dir / "downloads").iterdir()] == ["cifar-10-python.tar.gz"]


def test_cifar10_prepare_end_to_end(tmp_path: Path, server: Loopback, cifar: FakeCifar) -> None:
    folder = datasets.prepare("cifar10", tmp_path, mirror=server.url)
    assert folder == tmp_path / "cifar10"
    _assert_cifar_prepared(tmp_path, cifar)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["source_url"] == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert manifest["md5"] == hashlib.md5(cifar.tarball).hexdigest()
    assert manifest["files"]["train_images.npy"]["shape"] == [5 * IMAGES_PER_BATCH, 3, 32, 32]
    assert manifest["label_names"][3] == "class3"
    datasets.prepare("cifar10", tmp_path, mirror=server.url)  # already prepared: no download
    assert server.ranges(CIFAR_PATH) == [None]


def test_cifar10_checksum_mismatch(
    tmp_path: Path, server: Loopback, cifar: FakeCifar, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = replace(datasets.CIFAR10_SOURCE, md5="0" * 32)
    monkeypatch.setattr(datasets, "CIFAR10_SOURCE", wrong)
    with pytest.raises(UsageError, match="md5 checksum mismatch: expected 0{32}, got [0-9a-f]{32}"):
        datasets.prepare("cifar10", tmp_path, mirror=server.url)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["downloads"]  # no .part, no dataset


class _Shell:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("a pickle that calls a function",))


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ({"data_batch_5": None}, "data_batch_5: missing"),
        (
            {"test_batch": pickle.dumps({b"data": b"", b"labels": [3, 12]})},
            "test_batch: labels outside 0..9",
        ),
        (
            {"data_batch_2": pickle.dumps(_Shell())},
            "data_batch_2: cannot unpickle .*refusing global builtins.print",
        ),
    ],
)
def test_corrupt_cifar10_archive_is_refused(
    tmp_path: Path,
    server: Loopback,
    cifar: FakeCifar,
    monkeypatch: pytest.MonkeyPatch,
    changed: dict[str, bytes | None],
    message: str,
) -> None:
    tarball = make_cifar(seed=0, changed_members=changed).tarball
    server.files[CIFAR_PATH] = tarball
    source = replace(datasets.CIFAR10_SOURCE, md5=hashlib.md5(tarball).hexdigest(), size_bytes=None)
    monkeypatch.setattr(datasets, "CIFAR10_SOURCE", source)
    with pytest.raises(
        UsageError, match=f"corrupt CIFAR-10 archive: cifar-10-batches-py/{message}"
    ):
        datasets.prepare("cifar10", tmp_path, mirror=server.url)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["downloads"]  # no dataset, no temp folder


def test_dropped_connection_resumes_with_a_range(
    tmp_path: Path, server: Loopback, cifar: FakeCifar
) -> None:
    server.drop_first.add(CIFAR_PATH)
    datasets.prepare("cifar10", tmp_path, mirror=server.url)
    assert server.ranges(CIFAR_PATH) == [None, f"bytes={len(cifar.tarball) // 2}-"]
    _assert_cifar_prepared(tmp_path, cifar)


def test_partial_file_from_an_earlier_run_is_resumed(
    tmp_path: Path, server: Loopback, cifar: FakeCifar
) -> None:
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "cifar-10-python.tar.gz.part").write_bytes(cifar.tarball[:1000])
    datasets.prepare("cifar10", tmp_path, mirror=server.url)
    assert server.ranges(CIFAR_PATH) == ["bytes=1000-"]
    _assert_cifar_prepared(tmp_path, cifar)


def test_server_ignoring_the_range_restarts_the_file(
    tmp_path: Path, server: Loopback, cifar: FakeCifar
) -> None:
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "cifar-10-python.tar.gz.part").write_bytes(b"stale" * 100)
    server.ignore_range.add(CIFAR_PATH)
    datasets.prepare("cifar10", tmp_path, mirror=server.url)
    assert server.ranges(CIFAR_PATH) == ["bytes=500-"]  # answered 200: whole file rewritten
    _assert_cifar_prepared(tmp_path, cifar)


def test_retries_exhausted_keep_the_part_for_the_next_run(tmp_path: Path, server: Loopback) -> None:
    body = bytes(range(256)) * 40
    server.files["/blob"] = body
    server.drop_first.add("/blob")
    dest = tmp_path / "blob.bin"
    checksum = Checksum(HashAlgorithm.SHA256, hashlib.sha256(body).hexdigest())
    with pytest.raises(UsageError, match="failed after 1 attempt.*is kept"):
        download(f"{server.url}/blob", dest, checksum=checksum, max_retries=0)
    assert dest.with_name("blob.bin.part").stat().st_size == len(body) // 2
    assert download(f"{server.url}/blob", dest, checksum=checksum).read_bytes() == body
    assert server.ranges("/blob") == [None, f"bytes={len(body) // 2}-"]
    with pytest.raises(UsageError, match="HTTP 404"):
        download(f"{server.url}/missing", tmp_path / "missing", checksum=checksum)


# -- FineWeb10B ---------------------------------------------------------------------------------


def test_fineweb_prepare_val_and_two_train_shards(tmp_path: Path, server: Loopback) -> None:
    rng = np.random.default_rng(1)
    tokens = {
        name: rng.integers(0, 50257, size=size)
        for name, size in (
            ("fineweb_val_000000.bin", 3000),
            ("fineweb_train_000001.bin", 2000),
            ("fineweb_train_000002.bin", 2500),
        )
    }
    serve_fineweb(server, {name: shard_bytes(tmp_path, t) for name, t in tokens.items()})
    data_dir = tmp_path / "data"
    with pytest.raises(
        UsageError, match="fineweb_train_000003.bin is not in the published listing"
    ):
        datasets.prepare("fineweb10B", data_dir, train_shards=3, mirror=server.url)
    assert not (data_dir / "fineweb10B").exists()  # refused before any download
    folder = datasets.prepare("fineweb10B", data_dir, train_shards=2, mirror=server.url)
    train, val = datasets.fineweb_shards(data_dir)
    assert val == folder / "fineweb_val_000000.bin"
    assert train == [folder / "fineweb_train_000001.bin", folder / "fineweb_train_000002.bin"]
    for path in (*train, val):
        np.testing.assert_array_equal(read_shard(path), tokens[path.name])
    assert sorted(p.name for p in folder.iterdir()) == sorted(tokens)  # no .part left


def test_fineweb_truncated_shard_is_refused(tmp_path: Path, server: Loopback) -> None:
    val = shard_bytes(tmp_path, np.arange(1000))
    train = shard_bytes(tmp_path, np.arange(1000))[:-100]  # the listing matches the cut bytes
    serve_fineweb(server, {"fineweb_val_000000.bin": val, "fineweb_train_000001.bin": train})
    with pytest.raises(UsageError, match=r"fineweb_train_000001\.bin.*truncated"):
        datasets.prepare("fineweb10B", tmp_path, mirror=server.url)
    assert sorted(p.name for p in (tmp_path / "fineweb10B").iterdir()) == ["fineweb_val_000000.bin"]


def test_fineweb_bad_magic_is_refused(tmp_path: Path, server: Loopback) -> None:
    val = bytearray(shard_bytes(tmp_path, np.arange(1000)))
    val[:4] = (12345).to_bytes(4, "little")
    train = shard_bytes(tmp_path, np.arange(1000))
    serve_fineweb(server, {"fineweb_val_000000.bin": bytes(val), "fineweb_train_000001.bin": train})
    with pytest.raises(UsageError, match=r"fineweb_val_000000\.bin.*bad magic 12345"):
        datasets.prepare("fineweb10B", tmp_path, mirror=server.url)
    assert not any((tmp_path / "fineweb10B").iterdir())


def test_loaders_on_an_empty_folder_name_the_prepare_command(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=f"optbench data prepare cifar10 --dir {tmp_path}`"):
        datasets.cifar10_arrays(tmp_path)
    expected = f"optbench data prepare fineweb10B --dir {tmp_path} --train-shards K`"
    with pytest.raises(UsageError, match=re.escape(expected)):
        datasets.fineweb_shards(tmp_path)


# -- the command line ---------------------------------------------------------------------------


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("optbench:")]
    assert len(lines) == 1, lines
    return lines[0]


def test_cli_prepares_cifar10(
    tmp_path: Path, server: Loopback, cifar: FakeCifar, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["data", "prepare", "cifar10", "--dir", str(tmp_path), "--mirror", server.url]
    assert main(argv) == 0
    assert f"prepared in {tmp_path / 'cifar10'}" in capsys.readouterr().out
    _assert_cifar_prepared(tmp_path, cifar)


def test_cli_errors_exit_2_with_one_line(
    tmp_path: Path,
    server: Loopback,
    cifar: FakeCifar,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["data", "prepare", "imagenet", "--dir", str(tmp_path)]) == 2
    assert "unknown dataset 'imagenet' (known: cifar10, fineweb10B)" in _error_line(capsys)
    monkeypatch.setattr(datasets, "CIFAR10_SOURCE", replace(datasets.CIFAR10_SOURCE, md5="0" * 32))
    argv = ["data", "prepare", "cifar10", "--dir", str(tmp_path), "--mirror", server.url]
    assert main(argv) == 2
    line = _error_line(capsys)
    assert "md5 checksum mismatch" in line and CIFAR_PATH in line
    assert not (tmp_path / "cifar10").exists()


def test_cli_help_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "prepare", "--help"])
    assert exit_info.value.code == 0
    assert "example:\n  optbench data prepare fineweb10B" in capsys.readouterr().out
