"""The paper's collate bug replayed as its code ran logic: one model per distractor count.

    python experiments/logic_replay.py [--out runs/logic-replay]

The paper's code trained a logic model for each number of distractors, so every caption of a batch
had one length. A stable sort by length then leaves a batch as it was, and the bug (labels kept
in the old order) costs nothing. This trains the paper's VED (configs/paper-logic.toml, at most 30
epochs as in `ved reproduce`) on logic captions with k = 2..5 distractors, then scores each on its
validation captions twice, on the same batches and draws: as the published code scores (labels
left unsorted), and with the labels sorted along. (k = 1 has 13 to 20
captions per digit in all, and the disjoint validation split then lacks some digits.) Finished
runs resume.
"""

import argparse
from pathlib import Path

from ved import config as configs
from ved import metrics, mnist
from ved.pipeline import load_generator, load_judge
from ved.train import make_split, train


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/logic-replay", help="folder for the runs")
    p.add_argument("--counts", type=int, nargs="+", default=[2, 3, 4, 5], help="distractor counts, 2 to 5")
    args = p.parse_args()
    data, judge = mnist.load(progress=False), load_judge()
    print("| distractors | replayed as the published code scores | the same draws, labels aligned |")
    print("|---|---|---|")
    for k in args.counts:
        config = configs.load("paper-logic")
        config["data"].update(logic_k=[k, k], logic_test_k=[k, k])
        config["train"].update(max_epochs=30, eval_images=1000)
        run = Path(args.out) / f"k{k}"
        train(config, run, resume=True, progress=False, log=lambda *_: None)
        model = load_generator(run)
        valid = make_split(data, config["data"], "valid", "cpu")
        replay = metrics.published_code_accuracy(model, judge, valid)
        aligned = metrics.published_code_accuracy(model, judge, valid, aligned=True)
        print(f"| {k} | {replay:.1%} | {aligned:.1%} |", flush=True)


if __name__ == "__main__":
    main()
