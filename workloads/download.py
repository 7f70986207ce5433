"""Fetches a URL to a file: resumable, retried, checksummed, and renamed into place atomically.

`download(url, dest, checksum=...)` writes into `<dest>.part`. When a `.part` is already there (an
earlier run was interrupted), it asks the server for the rest with `Range: bytes=N-`: a 206 answer
is appended, a 200 answer (the server ignored the range) starts the file over. A dropped connection
(short body, reset, timeout, unreachable host, HTTP 5xx) is retried `max_retries` times with a
doubling pause, each retry resuming from the bytes on disk. Only once the whole file has the
expected size, digest, and passes the caller's own check is it renamed to `dest`, so `dest` exists
only when it is complete and verified. A `dest` that already verifies is not fetched again.

Standard library only (`urllib.request`); the progress bar is tqdm's, shown when stderr is a TTY.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from tqdm import tqdm

from harness.errors import UsageError

__all__ = ["Checksum", "HashAlgorithm", "download", "fetch_bytes", "file_digest"]

_CHUNK_BYTES = 1 << 20
_USER_AGENT = "optbench-data/1"
# Errors after which the same request may well succeed: the connection, not the file, failed.
_TRANSIENT = (http.client.IncompleteRead, ConnectionError, socket.timeout, urllib.error.URLError)


class HashAlgorithm(StrEnum):
    """The digests published by the dataset hosts optbench downloads from."""

    MD5 = "md5"
    SHA256 = "sha256"


@dataclass(frozen=True, slots=True)
class Checksum:
    """A published digest of a file.

    Attributes:
      algorithm: the hash function.
      hex_digest: its lowercase hexadecimal digest of the whole file.
    """

    algorithm: HashAlgorithm
    hex_digest: str


def file_digest(path: Path, algorithm: HashAlgorithm) -> str:
    """The lowercase hex digest of the whole file at `path`, read in chunks."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, str(algorithm)).hexdigest()


def fetch_bytes(url: str, *, timeout_s: float = 60.0, max_retries: int = 5) -> bytes:
    """The body of a small resource (a JSON listing), retried like `download` but not resumed.

    Raises:
      UsageError: naming the URL, on an HTTP error or when every retry failed.
    """
    for attempt in range(max_retries + 1):
        try:
            with urllib.request.urlopen(_request(url, 0), timeout=timeout_s) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as e:
            _raise_unless_retryable(url, e)
            error: Exception = e
        except _TRANSIENT as e:
            error = e
        _pause_before_retry(url, attempt, max_retries, error, None)
    raise AssertionError("unreachable: the last failed attempt raises")


def download(
    url: str,
    dest: Path,
    *,
    checksum: Checksum,
    expected_size_bytes: int | None = None,
    check_file: Callable[[Path], None] | None = None,
    timeout_s: float = 60.0,
    max_retries: int = 5,
) -> Path:
    """Downloads `url` to `dest` unless `dest` already verifies; see the module docstring.

    Args:
      url: where to fetch from (http or https).
      dest: the final file; its folder is created. `<dest>.part` holds the bytes received so far.
      checksum: the published digest the whole file must have.
      expected_size_bytes: the published size, when known; checked before the digest.
      check_file: a further check of the verified `.part` (such as a header check) run before the
        rename; it raises `UsageError` to reject the file.
      timeout_s: seconds a connection may stay silent before the attempt counts as failed.
      max_retries: attempts after the first one, each resuming from the bytes on disk.

    Returns:
      `dest`.

    Raises:
      UsageError: on a size or checksum mismatch (the `.part` is deleted, so the next run starts
        clean), when `check_file` rejects the file (deleted too), on an HTTP error, or when every
        retry failed (the `.part` is kept for the next run to resume).
    """
    dest = Path(dest)
    if dest.is_file() and _verifies(dest, checksum, expected_size_bytes):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(max_retries + 1):
        try:
            _fetch_rest(url, part, expected_size_bytes, timeout_s)
            break
        except urllib.error.HTTPError as e:
            _raise_unless_retryable(url, e)
            error: Exception = e
        except _TRANSIENT as e:
            error = e
        _pause_before_retry(url, attempt, max_retries, error, part)
    _verify_part(url, part, checksum, expected_size_bytes)
    if check_file is not None:
        try:
            check_file(part)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    os.chmod(part, 0o644)
    os.replace(part, dest)
    return dest


def _request(url: str, start_byte: int) -> urllib.request.Request:
    headers = {"User-Agent": _USER_AGENT}
    if start_byte:
        headers["Range"] = f"bytes={start_byte}-"
    return urllib.request.Request(url, headers=headers)


def _raise_unless_retryable(url: str, error: urllib.error.HTTPError) -> None:
    if error.code < 500:  # 404, 403...: asking again gives the same answer
        raise UsageError(f"fetching {url}: HTTP {error.code} {error.reason}") from None


def _pause_before_retry(
    url: str, attempt: int, max_retries: int, error: Exception, part: Path | None
) -> None:
    """Sleeps before the next attempt, or raises `UsageError` when none is left."""
    what = f"{type(error).__name__}: {error}"
    if attempt >= max_retries:
        kept = f"; {part} is kept and the next run resumes it" if part and part.exists() else ""
        raise UsageError(
            f"fetching {url} failed after {max_retries + 1} attempt(s) (last: {what}){kept}"
        ) from None
    pause_s = 0.25 * 2**attempt
    print(f"optbench: {url}: {what}; retrying in {pause_s:g} s", file=sys.stderr)
    time.sleep(pause_s)


def _fetch_rest(url: str, part: Path, expected_size_bytes: int | None, timeout_s: float) -> None:
    """Appends the bytes `part` lacks (or rewrites it when the server ignores the range).

    Raises:
      http.client.IncompleteRead: when the body ends before its announced length.
    """
    have_bytes = part.stat().st_size if part.exists() else 0
    if expected_size_bytes is not None and have_bytes >= expected_size_bytes:
        return  # complete (or too long): the size and digest checks decide
    try:
        response = urllib.request.urlopen(_request(url, have_bytes), timeout=timeout_s)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have_bytes:  # nothing past our bytes: the .part is already whole
            return
        raise
    with response:
        if have_bytes and response.status == 206:
            _check_content_range(url, response.headers.get("Content-Range", ""), have_bytes)
        else:
            have_bytes = 0  # a 200: the full body follows, so start the file over
        length = response.headers.get("Content-Length")
        body_bytes = int(length) if length is not None else None
        total = have_bytes + body_bytes if body_bytes is not None else expected_size_bytes
        _copy_body(response, part, have_bytes, body_bytes, total)


def _check_content_range(url: str, content_range: str, start_byte: int) -> None:
    if not content_range.startswith(f"bytes {start_byte}-"):
        raise UsageError(
            f"fetching {url}: asked for bytes {start_byte}- and got Content-Range "
            f"{content_range!r}; delete the .part file to start over"
        )


def _copy_body(
    response: http.client.HTTPResponse,
    part: Path,
    start_byte: int,
    body_bytes: int | None,
    total_bytes: int | None,
) -> None:
    received_bytes = 0
    bar = tqdm(
        total=total_bytes,
        initial=start_byte,
        desc=part.name.removesuffix(".part"),
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=None,
        leave=False,
    )
    with bar, part.open("ab" if start_byte else "wb") as f:
        while chunk := response.read(_CHUNK_BYTES):
            f.write(chunk)
            received_bytes += len(chunk)
            bar.update(len(chunk))
        f.flush()
        os.fsync(f.fileno())
    if body_bytes is not None and received_bytes < body_bytes:
        # http.client returns a short body silently; a short body is a dropped connection
        raise http.client.IncompleteRead(b"", body_bytes - received_bytes)


def _verifies(path: Path, checksum: Checksum, expected_size_bytes: int | None) -> bool:
    if expected_size_bytes is not None and path.stat().st_size != expected_size_bytes:
        return False
    return file_digest(path, checksum.algorithm) == checksum.hex_digest.lower()


def _verify_part(url: str, part: Path, checksum: Checksum, expected_size_bytes: int | None) -> None:
    """Raises `UsageError` (and deletes `part`) unless it has the expected size and digest."""
    size_bytes = part.stat().st_size
    if expected_size_bytes is not None and size_bytes != expected_size_bytes:
        part.unlink()
        raise UsageError(
            f"{url} -> {part}: size mismatch: expected {expected_size_bytes} bytes, got "
            f"{size_bytes}; deleted the partial file"
        )
    actual = file_digest(part, checksum.algorithm)
    if actual != checksum.hex_digest.lower():
        part.unlink()
        raise UsageError(
            f"{url} -> {part}: {checksum.algorithm} checksum mismatch: expected "
            f"{checksum.hex_digest.lower()}, got {actual}; deleted the partial file"
        )
