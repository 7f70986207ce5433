"""A loopback HTTP server serving datasets in their canonical formats, for `data prepare` tests.

The server listens on 127.0.0.1 only, serves generated files (a small CIFAR-10 tarball, speedrun
token shards and the host's tree listing), honours `Range: bytes=N-`, records every request, and
can cut a response in half to play a dropped connection. Used by
`tests/workloads/test_data_prepare.py` and `tests/test_readme_commands.py`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import pickle
import re
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from workloads import datasets
from workloads.shards import write_shard

CIFAR_PATH = "/~kriz/cifar-10-python.tar.gz"
FINEWEB_PATH = "/datasets/kjj0/fineweb10B-gpt2/resolve/main/"
LISTING_PATH = "/api/datasets/kjj0/fineweb10B-gpt2/tree/main"
IMAGES_PER_BATCH = 8


@dataclass
class Loopback:
    """The server's files (path -> bytes), what it should misbehave on, and what it was asked."""

    url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    drop_first: set[str] = field(default_factory=set)  # cut the next response for these in half
    ignore_range: set[str] = field(default_factory=set)  # answer 200 with the whole file
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)

    def ranges(self, path: str) -> list[str | None]:
        return [byte_range for seen, byte_range in self.requests if seen == path]


def _handler(state: Loopback) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            byte_range = self.headers.get("Range")
            state.requests.append((path, byte_range))
            if path not in state.files:
                self.send_error(404)
                return
            body = state.files[path]
            match = re.fullmatch(r"bytes=(\d+)-", byte_range or "")
            start = int(match[1]) if match and path not in state.ignore_range else 0
            if start >= len(body) > 0:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            if path in state.drop_first:  # full Content-Length announced, half the body sent
                state.drop_first.discard(path)
                self.wfile.write(body[start : start + (len(body) - start) // 2])
                self.close_connection = True
                return
            self.wfile.write(body[start:])

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Loopback]:
    """Runs the server for the `with` block; proxies are bypassed so requests stay on loopback."""
    for name in ("http_proxy", "https_proxy", "all_proxy"):  # talk to 127.0.0.1 directly
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    state = Loopback()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


# -- CIFAR-10 -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeCifar:
    tarball: bytes
    arrays: datasets.Cifar10Arrays


def _batch_pickle(images: np.ndarray, labels: np.ndarray, label: bytes) -> bytes:
    batch = {
        b"batch_label": label,
        b"labels": [int(v) for v in labels],
        b"data": images.reshape(len(images), -1),
        b"filenames": [b"img_%d.png" % i for i in range(len(images))],
    }
    # The real archive holds Python 2 protocol-2 pickles, whose str keys load as bytes; protocol 4
    # stores bytes natively (Python 3's protocol 2 would route them through _codecs.encode).
    return pickle.dumps(batch, protocol=4)


def make_cifar(seed: int, changed_members: dict[str, bytes | None] | None = None) -> FakeCifar:
    """A CIFAR-10-format tarball of random images; `changed_members` replaces (None: drops) some."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(6 * IMAGES_PER_BATCH, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=6 * IMAGES_PER_BATCH).astype(np.uint8)
    meta = {b"label_names": [b"class%d" % i for i in range(10)], b"num_vis": 3072}
    members: dict[str, bytes | None] = {"batches.meta": pickle.dumps(meta, protocol=4)}
    for i in range(6):
        part = slice(i * IMAGES_PER_BATCH, (i + 1) * IMAGES_PER_BATCH)
        name = f"data_batch_{i + 1}" if i < 5 else "test_batch"
        members[name] = _batch_pickle(images[part], labels[part], name.encode())
    members.update(changed_members or {})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in ((n, d) for n, d in members.items() if d is not None):
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    split = 5 * IMAGES_PER_BATCH
    arrays = datasets.Cifar10Arrays(images[:split], labels[:split], images[split:], labels[split:])
    return FakeCifar(buffer.getvalue(), arrays)


def serve_cifar(server: Loopback, fake: FakeCifar, monkeypatch: pytest.MonkeyPatch) -> None:
    """Serves the fake tarball and makes it the expected source (its MD5, size and counts)."""
    server.files[CIFAR_PATH] = fake.tarball
    source = replace(
        datasets.CIFAR10_SOURCE,
        md5=hashlib.md5(fake.tarball).hexdigest(),
        size_bytes=len(fake.tarball),
        train_images=5 * IMAGES_PER_BATCH,
        test_images=IMAGES_PER_BATCH,
    )
    monkeypatch.setattr(datasets, "CIFAR10_SOURCE", source)


# -- FineWeb10B ---------------------------------------------------------------------------------


def shard_bytes(tmp_path: Path, tokens: np.ndarray) -> bytes:
    """`tokens` as a speedrun token shard (header and uint16 tokens), written through `tmp_path`."""
    path = tmp_path / "shard-source.bin"
    write_shard(path, tokens)
    return path.read_bytes()


def serve_fineweb(server: Loopback, shards: dict[str, bytes]) -> None:
    """Serves the shards and a tree listing giving each one's sha256 and size."""
    listing: list[dict[str, object]] = [
        {"type": "directory", "path": "docs"},
        {"type": "file", "path": "README.md", "size": 10},  # small files have no "lfs"
    ]
    for name, data in shards.items():
        server.files[FINEWEB_PATH + name] = data
        lfs = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        listing.append({"type": "file", "path": name, "size": len(data), "lfs": lfs})
    server.files[LISTING_PATH] = json.dumps(listing).encode()
