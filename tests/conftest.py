import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def mnist_data():
    """Real MNIST, through the same verified cache the CLI uses."""
    from ved import mnist

    return mnist.load(progress=False, log=lambda m: None)


def run_ved(*args, env=None, timeout=600):
    """The real command line, in a subprocess: exit code, stdout, stderr."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run([sys.executable, "-m", "ved", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)
    return done.returncode, done.stdout, done.stderr
