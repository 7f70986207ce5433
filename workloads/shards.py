"""Token shards in the NanoGPT speedrun's format, and the contiguous token loader over them.

File layout (all little-endian), as written by modded-nanogpt's `data/fineweb.py`::

    header   256 x int32   header[0] = 20240520 (magic), header[1] = 1 (version),
                           header[2] = N (token count), the rest zero
    tokens   N x uint16

so a valid shard is exactly `1024 + 2 * N` bytes. `write_shard` writes atomically (temporary file in
the same folder, fsync, `os.replace`), so concurrent trials that build the same shard race safely.

`TokenStream` treats the shards as one long token stream of N tokens (positions wrap around the
end) and draws the batch of a step in one of two ways, both pure functions of (seed, step):

- `Sampling.CONTIGUOUS`, the speedrun's read: `B * T + 1` contiguous tokens starting at
      start(seed, step) = (offset(seed) + step * B * T) mod N,
  with `offset(seed)` drawn from `numpy.random.default_rng(seed)`, reshaped to inputs
  `buf[:-1].view(B, T)` and targets `buf[1:].view(B, T)`. Right for shards of shuffled documents
  (FineWeb).
- `Sampling.RANDOM_WINDOWS`, nanoGPT's `get_batch`: B windows of `T + 1` tokens at independent
  starts `numpy.random.default_rng([seed, step]).integers(N, size=B)`; row b gives inputs
  `window[:-1]` and targets `window[1:]`. Right for ordered text (source files one after another),
  where a contiguous read would train on one file at a time.

Validation reads `fixed_batches(n)`: the first n contiguous batches from the stream's start, the
same for every seed. The smoke and full NanoGPT workloads both read through this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

import numpy as np
import torch

from harness.atomic import atomic_file
from harness.errors import UsageError

__all__ = [
    "HEADER_BYTES",
    "SHARD_MAGIC",
    "SHARD_VERSION",
    "Sampling",
    "TokenStream",
    "read_shard",
    "write_shard",
]

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
_MAX_TOKEN = np.iinfo(np.uint16).max


def write_shard(path: Path | str, tokens: np.ndarray | Sequence[int]) -> None:
    """Writes `tokens` to `path` as a speedrun shard, atomically.

    Args:
      path: the shard file to create or replace; its folder must exist.
      tokens: a 1-D sequence of ints in [0, 65535].

    Raises:
      UsageError: when the tokens are not 1-D or do not fit in uint16.
    """
    path = Path(path)
    array = np.asarray(tokens)
    if array.ndim != 1:
        raise UsageError(f"{path}: tokens must be 1-D, got shape {array.shape}")
    if array.size and (array.min() < 0 or array.max() > _MAX_TOKEN):
        raise UsageError(f"{path}: token ids must lie in [0, {_MAX_TOKEN}]")
    if array.size >= 2**31:
        raise UsageError(f"{path}: {array.size} tokens do not fit one shard (max 2**31 - 1)")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = (SHARD_MAGIC, SHARD_VERSION, array.size)
    with atomic_file(path, fsync=True) as tmp, open(tmp, "wb") as f:  # readable by all: shared
        f.write(header.tobytes())
        f.write(array.astype("<u2").tobytes())


def read_shard(path: Path | str) -> np.ndarray:
    """Memory-maps the tokens of a speedrun shard after validating its header and size.

    Args:
      path: the shard file.

    Returns:
      A read-only 1-D uint16 array (a `numpy.memmap`) of the shard's tokens.

    Raises:
      UsageError: naming the file, when it is missing, has a bad magic or version, or its size does
        not match the token count in its header (truncated or trailing bytes).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            raw = f.read(HEADER_BYTES)
    except OSError as e:
        raise UsageError(f"token shard {path}: cannot read ({e.strerror})") from None
    if size < HEADER_BYTES:
        raise UsageError(
            f"token shard {path}: truncated: {size} bytes, "
            f"shorter than the {HEADER_BYTES}-byte header"
        )
    magic, version, count = (int(v) for v in np.frombuffer(raw, dtype="<i4", count=3))
    if magic != SHARD_MAGIC:
        raise UsageError(
            f"token shard {path}: bad magic {magic} (expected {SHARD_MAGIC}): not a speedrun shard"
        )
    if version != SHARD_VERSION:
        raise UsageError(
            f"token shard {path}: unsupported version {version} (expected {SHARD_VERSION})"
        )
    held = (size - HEADER_BYTES) // 2
    if size != HEADER_BYTES + 2 * count:
        what = "truncated" if size < HEADER_BYTES + 2 * count else "trailing bytes"
        raise UsageError(
            f"token shard {path}: {what}: header says {count} tokens, file holds {held} "
            f"({size} bytes; expected {HEADER_BYTES + 2 * count})"
        )
    if count == 0:
        return np.empty(0, dtype=np.uint16)
    return np.memmap(path, dtype="<u2", mode="r", offset=HEADER_BYTES, shape=(count,))


class Sampling(StrEnum):
    """How `TokenStream.batch` picks a step's tokens (see the module docstring)."""

    CONTIGUOUS = "contiguous"
    RANDOM_WINDOWS = "random_windows"


class TokenStream:
    """The speedrun's contiguous token loader over one or more shards.

    Staged, the shards are read once with `read_shard` and concatenated into one int32 tensor on
    `device` (untimed), so a step's batch is one gather; unstaged, they stay memory-mapped and each
    batch is read from them and copied to `device`. Call `batch(seed, step)` for training
    batches and `fixed_batches(n)` for the validation sequences.

    Attributes:
      batch_size: B, sequences per batch.
      seq_len: T, tokens per sequence.
      sampling: how training batches are drawn.
      num_tokens: tokens in the whole stream.
    """

    def __init__(
        self,
        paths: Sequence[Path | str],
        batch_size: int,
        seq_len: int,
        device: torch.device | str = "cpu",
        sampling: Sampling = Sampling.CONTIGUOUS,
        staged: bool = True,
    ) -> None:
        """Args:
        paths: the shard files, read in this order as one stream.
        batch_size: B.
        seq_len: T.
        device: where the tokens are staged and batches are returned.
        sampling: how `batch` draws a step's tokens.
        staged: copy all tokens to `device` once (small streams); else keep the shards
          memory-mapped and copy each batch's tokens (FineWeb: billions of tokens).

        Raises:
          UsageError: when no shard is given, a shard is invalid, or the stream is shorter than
            one batch.
        """
        if not paths:
            raise UsageError("TokenStream needs at least one shard path")
        self._shards = [read_shard(p) for p in paths]
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.sampling = Sampling(sampling)
        self.num_tokens = sum(len(s) for s in self._shards)
        self._span = batch_size * seq_len + 1
        if self.num_tokens < self._span:
            raise UsageError(
                f"token shards {[str(p) for p in paths]} hold {self.num_tokens} tokens, fewer than "
                f"one batch of {batch_size} x {seq_len} + 1"
            )
        self._device = torch.device(device)
        self._starts = np.cumsum([0] + [len(s) for s in self._shards])
        self._tokens: torch.Tensor | None = None
        if staged:
            tokens = np.concatenate([np.asarray(s, dtype=np.int32) for s in self._shards])
            self._tokens = torch.from_numpy(tokens).to(self._device)

    def _take(self, index: np.ndarray) -> torch.Tensor:
        """Tokens at stream positions `index` (any shape), int64 on the device."""
        if self._tokens is not None:
            return self._tokens[torch.as_tensor(index, device=self._device)].long()
        flat = index.reshape(-1)
        out = np.empty(flat.shape, dtype=np.int64)
        shard_of = np.searchsorted(self._starts, flat, side="right") - 1
        for shard in np.unique(shard_of):  # memmap reads touch only the pages the batch needs
            mask = shard_of == shard
            out[mask] = self._shards[shard][flat[mask] - self._starts[shard]]
        return torch.from_numpy(out.reshape(index.shape)).to(self._device, non_blocking=True)

    def offset(self, seed: int) -> int:
        """Where the stream of `seed` starts: uniform on [0, num_tokens)."""
        return int(np.random.default_rng(seed).integers(self.num_tokens))

    def batch_at(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets, int64 (B, T), from the `B*T + 1` tokens at `position` (wrapping)."""
        buf = self._take((np.arange(self._span) + position) % self.num_tokens)
        shape = (self.batch_size, self.seq_len)
        return buf[:-1].view(shape), buf[1:].view(shape)

    def batch(self, seed: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The training batch of `step` for `seed`: a pure function of (seed, step)."""
        if self.sampling is Sampling.CONTIGUOUS:
            stride = self.batch_size * self.seq_len
            return self.batch_at((self.offset(seed) + step * stride) % self.num_tokens)
        starts = np.random.default_rng([seed, step]).integers(self.num_tokens, size=self.batch_size)
        window = np.arange(self.seq_len + 1)
        buf = self._take((starts[:, None] + window[None, :]) % self.num_tokens)
        return buf[:, :-1].contiguous(), buf[:, 1:].contiguous()

    def fixed_batches(self, num_batches: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first `num_batches` consecutive batches from the stream's start, without wrapping.

        This is the speedrun's validation read: the same sequences for every seed and every eval.

        Raises:
          UsageError: when the stream holds fewer than `num_batches` batches.
        """
        stride = self.batch_size * self.seq_len
        if num_batches * stride + 1 > self.num_tokens:
            raise UsageError(
                f"the validation stream holds {self.num_tokens} tokens, fewer than {num_batches} "
                f"batches of {self.batch_size} x {self.seq_len} + 1"
            )
        return [self.batch_at(i * stride) for i in range(num_batches)]
