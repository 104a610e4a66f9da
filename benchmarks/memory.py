"""Peak memory of large jobs: drawing 10^3 to 10^6 images, and scoring 40,000 images of one caption.

    python benchmarks/memory.py                      # the current code
    python benchmarks/memory.py --against a841e7e    # that revision too, side by side

Each measurement runs in its own process and reads its peak resident memory (ru_maxrss).
Drawing: `pipe.generate(captions, n=1000)` of the default model in fp32, as a uint8 array; the array itself
is 784 bytes an image, so the figure that must stay flat as the job grows is the peak less the
memory after loading less the array (`working_mb`). Scoring: `ved evaluate --samples` of uint8
(1, 40000, 28, 28) real validation digits for `five`, against the validation split; its whole peak
must stay under 2 GB. A measurement that fails (a revision that runs out of memory or refuses the
job) is reported with its last line of error.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import revisions

DRAW = """
import json, resource, sys, torch, ved
images = int(sys.argv[1])
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
pipe = ved.load()
pipe.generate(["five"], n=8, seed=1)  # warm-up
loaded = rss()
out = pipe.generate(["three plus two"] * (images // 1000), n=1000, seed=0)
peak = rss()
print(json.dumps({"images": int(out.shape[0] * out.shape[1]), "loaded_mb": loaded, "peak_mb": peak,
                  "output_mb": out.nbytes / 2**20, "working_mb": peak - loaded - out.nbytes / 2**20}))
"""


def run(code: list[str], env: dict) -> dict:
    done = subprocess.run([sys.executable, *code], env=env, capture_output=True, text=True)
    if done.returncode:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        return {"failed": lines[-1][:200]}
    return json.loads(done.stdout.strip().splitlines()[-1])


SCORE = """
import json, resource, subprocess, sys
done = subprocess.run([sys.executable, "-m", "ved", "evaluate", "--samples", sys.argv[1],
                       "--captions-file", sys.argv[2], "--split", "valid"], capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
if done.returncode:
    print(json.dumps({"failed": (done.stderr.strip().splitlines() or ["?"])[-1][:200], "peak_mb": peak}))
else:
    print(json.dumps({"images": 40000, "peak_mb": peak}))
"""


def score_inputs(folder: Path) -> tuple[Path, Path]:
    """40,000 real validation digits 5 (repeated) as one caption's images, and its captions file."""
    import numpy as np

    from ved import mnist

    images, labels = mnist.load(progress=False).split("valid")
    samples = folder / "fives.npy"
    np.save(samples, np.resize(images[labels == 5], (40_000, 28, 28))[None])
    captions = folder / "captions.txt"
    captions.write_text("five\n")
    return samples, captions


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--images",
        type=int,
        nargs="+",
        default=[1_000, 10_000, 100_000, 1_000_000],
        help="image counts to draw (default: 1000 10000 100000 1000000)",
    )
    revisions.add_options(p, "measure the code")
    args = p.parse_args()
    result = {**revisions.machine()}
    with tempfile.TemporaryDirectory() as tmp:
        samples, captions = score_inputs(Path(tmp))

        def measure(env):
            rows = {str(n): run(["-c", DRAW, str(n)], env) for n in args.images}
            rows["score_40000"] = run(["-c", SCORE, str(samples), str(captions)], env)
            return rows

        runs = revisions.alternate(args.against, 1, measure, result)
    for name, rows in runs.items():
        result[name] = rows[0]
    revisions.report(result, args.json)


if __name__ == "__main__":
    main()
