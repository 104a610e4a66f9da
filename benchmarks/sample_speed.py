"""Sampling throughput: images per second of a large job, the current code beside another revision.

    python benchmarks/sample_speed.py                       # 10,000 images of cvae-mixed
    python benchmarks/sample_speed.py --against HEAD~5      # that revision too, and the ratio
    python benchmarks/sample_speed.py --device cuda         # on a GPU
    python benchmarks/sample_speed.py --precision auto --against 82705d8   # bf16 beside fp32 code

Each measurement runs in its own process (the revision's code, the current virtual environment):
load the model, draw one small warm-up request, then time `pipe.generate(captions, n, seed=0)`
for the images asked, over four captions of different families, and read the process's peak
memory. Rounds alternate between the two codes so that a machine's drift hits both. `--precision`
goes to every code that knows it; a revision from before it draws in fp32, its only way.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import revisions

from ved.precision import CHOICES

MEASURE = """
import json, resource, sys, time, torch, ved
model, images, device, precision = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
captions = ["three plus two", "min nine five seven", "this is a black five on a white background",
            "one plus two plus one plus one"]
try:
    pipe = ved.load(model, device=device, precision=precision)
except TypeError:  # a revision from before `precision`: fp32
    pipe = ved.load(model, device=device)
pipe.generate(captions, 4, seed=1)  # warm-up: first-call costs are no part of a large job
if device == "cuda":
    torch.cuda.synchronize()
t0 = time.perf_counter()
out = pipe.generate(captions, images // len(captions), seed=0)
if device == "cuda":
    torch.cuda.synchronize()
seconds = time.perf_counter() - t0
print(json.dumps({"images": int(out.shape[0] * out.shape[1]), "seconds": seconds,
                  "images_per_s": out.shape[0] * out.shape[1] / seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(env: dict, args) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, args.model, str(args.images), args.device, args.precision],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"sample_speed: the measurement failed: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="cvae-mixed", help="a shipped model (default: cvae-mixed)")
    p.add_argument("--images", type=int, default=10_000, help="images per measurement (default: 10000)")
    p.add_argument("--rounds", type=int, default=2, help="measurements of each code (default: 2)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--precision", default="fp32", choices=CHOICES, help="(default: fp32)")
    revisions.add_options(p, "measure the code")
    args = p.parse_args()
    result = {
        "model": args.model,
        "images": args.images,
        "device": args.device,
        "precision": args.precision,
        **revisions.machine(),
    }
    runs = revisions.alternate(args.against, args.rounds, lambda env: measure(env, args), result)
    for name, rows in runs.items():
        best = max(rows, key=lambda r: r["images_per_s"])  # the least disturbed round
        result[name] = {**best, "all_images_per_s": [round(r["images_per_s"]) for r in rows]}
    if args.against:
        result["ratio_current_over_revision"] = (
            result["current"]["images_per_s"] / result[args.against]["images_per_s"]
        )
    revisions.report(result, args.json)


if __name__ == "__main__":
    main()
