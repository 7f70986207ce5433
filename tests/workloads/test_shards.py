"""Speedrun token shards: format, validation errors, atomic writes, and the TokenStream loader."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.errors import UsageError
from workloads.shards import (
    HEADER_BYTES,
    SHARD_MAGIC,
    SHARD_VERSION,
    Sampling,
    TokenStream,
    read_shard,
    write_shard,
)


def _header(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype="<i4", count=256)


def test_round_trip_and_header(tmp_path: Path) -> None:
    tokens = np.arange(1000, dtype=np.int64) * 65
    path = tmp_path / "shard.bin"
    write_shard(path, tokens)
    header = _header(path)
    assert list(header[:3]) == [SHARD_MAGIC, SHARD_VERSION, 1000]
    assert not header[3:].any()
    assert path.stat().st_size == HEADER_BYTES + 2 * 1000
    back = read_shard(path)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, tokens)


def test_round_trip_from_list_and_empty(tmp_path: Path) -> None:
    write_shard(tmp_path / "a.bin", [0, 1, 65535])
    np.testing.assert_array_equal(read_shard(tmp_path / "a.bin"), [0, 1, 65535])
    write_shard(tmp_path / "empty.bin", [])
    assert len(read_shard(tmp_path / "empty.bin")) == 0


def _rewrite_header(path: Path, index: int, value: int) -> None:
    header = _header(path)
    header[index] = value
    with path.open("r+b") as f:
        f.write(header.tobytes())


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (0, 12345, r"bad magic 12345 \(expected 20240520\)"),
        (1, 7, r"unsupported version 7 \(expected 1\)"),
    ],
)
def test_bad_header_names_file_and_field(
    tmp_path: Path, field: int, value: int, message: str
) -> None:
    path = tmp_path / "header.bin"
    write_shard(path, [1, 2, 3])
    _rewrite_header(path, field, value)
    with pytest.raises(UsageError, match=r"header\.bin.*" + message):
        read_shard(path)


def test_truncated_file_names_file_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "cut.bin"
    write_shard(path, np.arange(100))
    os.truncate(path, HEADER_BYTES + 2 * 60)
    with pytest.raises(UsageError) as err:
        read_shard(path)
    message = str(err.value)
    assert str(path) in message
    assert "truncated: header says 100 tokens, file holds 60" in message


def test_trailing_bytes_and_short_header(tmp_path: Path) -> None:
    path = tmp_path / "long.bin"
    write_shard(path, np.arange(10))
    with path.open("ab") as f:
        f.write(b"\x00" * 8)
    with pytest.raises(UsageError, match="trailing bytes: header says 10 tokens, file holds 14"):
        read_shard(path)
    stub = tmp_path / "stub.bin"
    stub.write_bytes(b"\x00" * 100)
    with pytest.raises(UsageError, match=r"stub\.bin.*truncated: 100 bytes"):
        read_shard(stub)
    with pytest.raises(UsageError, match=r"missing\.bin.*cannot read"):
        read_shard(tmp_path / "missing.bin")


def test_atomic_write_leaves_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "shard.bin"
    write_shard(path, np.arange(50))
    write_shard(path, np.arange(70))  # replacing an existing shard
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard.bin"]
    assert len(read_shard(path)) == 70

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_shard(path, np.arange(90))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard.bin"]
    assert len(read_shard(path)) == 70  # the old shard is intact


def test_write_rejects_bad_tokens(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"\[0, 65535\]"):
        write_shard(tmp_path / "x.bin", [0, 70000])
    with pytest.raises(UsageError, match="1-D"):
        write_shard(tmp_path / "x.bin", np.zeros((2, 2), dtype=np.int64))
    assert list(tmp_path.iterdir()) == []


def _two_shards(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / "s0.bin", tmp_path / "s1.bin"]
    write_shard(paths[0], np.arange(0, 300))
    write_shard(paths[1], np.arange(300, 500))
    return paths


def test_contiguous_stream_reads_like_the_speedrun(tmp_path: Path) -> None:
    stream = TokenStream(_two_shards(tmp_path), batch_size=4, seq_len=8)
    assert stream.num_tokens == 500
    inputs, targets = stream.batch(seed=3, step=5)
    assert inputs.dtype == targets.dtype == torch.int64
    assert inputs.shape == targets.shape == (4, 8)
    start = (stream.offset(3) + 5 * 32) % 500
    expected = (np.arange(start, start + 33) % 500).astype(np.int64)  # token value == position
    np.testing.assert_array_equal(inputs.flatten().numpy(), expected[:-1])
    np.testing.assert_array_equal(targets.flatten().numpy(), expected[1:])


def test_stream_wraps_and_crosses_shards(tmp_path: Path) -> None:
    stream = TokenStream(_two_shards(tmp_path), batch_size=2, seq_len=10)
    inputs, targets = stream.batch_at(490)
    flat = inputs.flatten().tolist() + [targets.flatten()[-1].item()]
    assert flat == [*range(490, 500), *range(0, 11)]
    inputs, _ = stream.batch_at(295)
    assert inputs[0].tolist() == list(range(295, 305))


@pytest.mark.parametrize("sampling", list(Sampling))
def test_batches_are_pure_in_seed_and_step(tmp_path: Path, sampling: Sampling) -> None:
    paths = _two_shards(tmp_path)
    a = TokenStream(paths, batch_size=4, seq_len=8, sampling=sampling)
    b = TokenStream(paths, batch_size=4, seq_len=8, sampling=sampling)
    for step in (0, 1, 17):
        for x, y in zip(a.batch(seed=1, step=step), b.batch(seed=1, step=step), strict=True):
            assert torch.equal(x, y)
    assert not torch.equal(a.batch(1, 0)[0], a.batch(1, 1)[0])
    assert not torch.equal(a.batch(1, 0)[0], a.batch(2, 0)[0])
    inputs, targets = a.batch(seed=1, step=4)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])  # targets are the next tokens
    assert torch.equal((inputs + 1) % 500, targets)


def test_fixed_batches_are_the_stream_start(tmp_path: Path) -> None:
    stream = TokenStream(_two_shards(tmp_path), batch_size=2, seq_len=10)
    batches = stream.fixed_batches(3)
    assert [b[0][0, 0].item() for b in batches] == [0, 20, 40]
    with pytest.raises(UsageError, match="fewer than 25 batches"):
        stream.fixed_batches(25)


def test_stream_rejects_too_little_data(tmp_path: Path) -> None:
    write_shard(tmp_path / "tiny.bin", np.arange(10))
    with pytest.raises(UsageError, match="fewer than one batch"):
        TokenStream([tmp_path / "tiny.bin"], batch_size=2, seq_len=8)
    with pytest.raises(UsageError, match="at least one shard"):
        TokenStream([], batch_size=2, seq_len=8)


@pytest.mark.parametrize("sampling", list(Sampling))
def test_memory_mapped_and_staged_streams_give_the_same_batches(
    tmp_path: Path, sampling: Sampling
) -> None:
    paths = [tmp_path / "a.bin", tmp_path / "b.bin"]
    write_shard(paths[0], np.arange(0, 700) % 65536)
    write_shard(paths[1], np.arange(700, 1000) % 65536)
    staged = TokenStream(paths, 4, 50, sampling=sampling)
    mapped = TokenStream(paths, 4, 50, sampling=sampling, staged=False)
    for step in (0, 3, 4, 11):  # batches that cross the shard boundary and wrap around the end
        for a, b in zip(staged.batch(7, step), mapped.batch(7, step), strict=True):
            assert torch.equal(a, b) and b.dtype == torch.int64
    assert all(
        torch.equal(a[0], b[0])
        for a, b in zip(staged.fixed_batches(3), mapped.fixed_batches(3), strict=True)
    )
