"""KID_judge and FD_judge of real digits against the validation reference: what "real against real"
scores for images the judge has never seen (held-out validation digits), for images it was trained
on (training digits) and for images of other writers (test digits; this opens the test split).

    python experiments/kid_real_digits.py

docs/metrics.md quotes its output.
"""

import numpy as np
import torch

from ved import captions, holdout, metrics, mnist
from ved.pipeline import load_judge


def main():
    data, judge = mnist.load(progress=False), load_judge()
    reference = metrics.RealReference(judge, data, split="valid")
    held = [
        metrics.kernel_distances(reference.held_out[d], reference.digit_features(d), reference.seed + d)
        for d in range(10)
    ]
    held = np.nanmean(held, axis=0)
    print(f"held-out validation digits: KID_judge {held.mean():.2f} ± {held.std():.2f}")
    train_x, train_y = data.split("train")
    with holdout.final_report("test digits' KID_judge and FD_judge (experiments/kid_real_digits.py)"):
        test_x, test_y = data.split("test")
    for name, (x, y) in (("training digits", (train_x, train_y)), ("test digits", (test_x, test_y))):
        rows = np.stack([x[y == d][:800] for d in range(10)])  # 800 of each, as if drawn for `zero`...
        r = metrics.score_images(torch.as_tensor(rows), captions.DIGIT_WORDS, judge, reference)
        print(
            f"{name}: KID_judge {r['kid_judge']:.2f} ± {r['kid_judge_std']:.2f}, "
            f"FD_judge {r['fd_judge']:.1f} (held-out real {r['fd_judge_real']:.1f})"
        )


if __name__ == "__main__":
    main()
