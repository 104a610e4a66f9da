import contextlib
import io
import os
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import pytest


@pytest.fixture(scope="session", autouse=True)
def test_split_ledger(tmp_path_factory):
    """Tests open the test split often: their ledger lines go to a file of the session's, never to the
    user's cache (subprocesses inherit it)."""
    path = tmp_path_factory.mktemp("ledger") / "test-split-ledger.md"
    old = os.environ.get("VED_TEST_LEDGER")
    os.environ["VED_TEST_LEDGER"] = str(path)
    yield path
    os.environ.pop("VED_TEST_LEDGER") if old is None else os.environ.__setitem__("VED_TEST_LEDGER", old)


@pytest.fixture(scope="session")
def mnist_data():
    """Real MNIST, through the same verified cache the CLI uses."""
    from ved import mnist

    return mnist.load(progress=False, log=lambda m: None)


HANG_GUARD_S = 3600  # stops a hung subprocess; far above any run on a busy machine, never a speed target


def run_ved(*args, env=None, timeout=HANG_GUARD_S):
    """The real command line, in a subprocess: exit code, stdout, stderr."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "ved", *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )
    return done.returncode, done.stdout, done.stderr


def ved_main(*args, env=None):
    """`ved ...` in this process (torch is imported once): exit code, stdout, stderr."""
    from ved import cli

    out, err = io.StringIO(), io.StringIO()
    old_env = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(list(args))
            except SystemExit as e:  # argparse's own refusals
                code = e.code
    finally:
        for k, v in old_env.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return code, out.getvalue(), err.getvalue()


def assert_one_line(code, err, fragment, expected_code=2):
    """A refusal as the CLI gives it: the exit status, one line holding `fragment`, no traceback,
    and no raw control character (input is echoed escaped)."""
    assert code == expected_code, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert fragment in err, err
    assert "\x1b" not in err and "\x07" not in err, err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(*args, preexec_fn=None):
    """A real `ved serve ARGS` (uvicorn, 2 workers) on a free loopback port, its URL while it runs.
    At the end its log must hold no traceback: no request made the server fail. `preexec_fn` runs in
    the server's process before it starts (e.g. to lower its open-file limit)."""
    port = free_port()
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ved", "serve", "--port", str(port), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=preexec_fn,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 600  # a hang guard: a busy machine starts slowly
    while time.time() < deadline and proc.poll() is None:
        try:
            if httpx.get(url + "/api/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        log.seek(0)
        pytest.fail("ved serve did not start: " + log.read())
    yield url
    proc.terminate()
    proc.wait(timeout=60)
    log.seek(0)
    text = log.read()
    assert "Traceback" not in text and "Exception in ASGI" not in text, text[-3000:]


@pytest.fixture(scope="session")
def server():
    """One real `ved serve` for the whole session."""
    with serving() as url:
        yield url


@pytest.fixture(scope="session")
def one_epoch_run(tmp_path_factory):
    """One epoch of the fastest real training run (tests/configs/tiny-fast.toml), for tests that
    tamper with or damage a copy of a run folder; never changed itself."""
    from pathlib import Path

    out = tmp_path_factory.mktemp("run") / "run"
    fast = Path(__file__).parent / "configs" / "tiny-fast.toml"
    code, _, err = ved_main("train", "--config", str(fast), "--out", str(out), "--epochs", "1", "--quiet")
    assert code == 0, err
    return out


@pytest.fixture
def test_split():
    """Opens the test split for a test that checks it, or scores a finished model on it: a test
    is a report. Tuning code never runs under it (tests/test_holdout.py)."""
    from ved import holdout

    with holdout.final_report():
        yield
