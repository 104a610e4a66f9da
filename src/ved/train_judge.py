"""Training the judge: the CNN that scores generated digits (models/judge.py), on MNIST's training split."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import checkpoint, holdout, mnist, models


def _shift(images: torch.Tensor, generator: torch.Generator, pixels: float = 2.0) -> torch.Tensor:
    """Random per-image translations (and slight rotation): the judge must not depend on centring."""
    n = len(images)
    angle = (torch.rand(n, generator=generator) - 0.5) * 0.3
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 2 * pixels / 14
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = (
        angle.cos(),
        -angle.sin(),
        angle.sin(),
        angle.cos(),
    )
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta.to(images.device), images.shape, align_corners=False)
    return F.grid_sample(images, grid, align_corners=False)


def fit_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    epochs: int,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = False,
    after_epoch=None,
) -> models.Judge:
    """A classifier of the judge's architecture and recipe (random shifts, Adam with a one-cycle
    rate) fitted to uint8 `images` (N, 28, 28) and their `labels`, on their device; `after_epoch(model,
    epoch)` runs in eval mode after each epoch. The judge and CAS (metrics.py) are both trained here."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    device = images.device
    judge = models.Judge().to(device)
    opt = torch.optim.Adam(judge.parameters(), lr=lr)
    steps = epochs * math.ceil(len(labels) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    for epoch in range(1, epochs + 1):
        judge.train()
        order = torch.randperm(len(labels), generator=g).to(device)
        batches = range(0, len(order), batch_size)
        for lo in tqdm(batches, desc=f"classifier epoch {epoch}", leave=False, disable=not progress):
            idx = order[lo : lo + batch_size]
            x = _shift(images[idx].unsqueeze(1).float() / 255, g)
            loss = F.cross_entropy(judge(x), labels[idx].long())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        judge.eval()
        if after_epoch is not None:
            after_epoch(judge, epoch)
    return judge


def train_judge(
    out,
    device: str = "cpu",
    epochs: int = 12,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = True,
    log=print,
) -> dict:
    """Train the evaluator CNN on the 50k training split; keep the epoch best on validation. The test
    images are read once, after the choice, to report the kept judge's accuracy."""
    data = mnist.load(progress=progress, log=log)
    x_train, y_train = (torch.as_tensor(a).to(device) for a in data.split("train"))
    x_valid, y_valid = (torch.as_tensor(a).to(device) for a in data.split("valid"))
    best, history = -1.0, []

    def after_epoch(judge, epoch):
        nonlocal best, config
        valid_acc = (judge.predict(x_valid.float() / 255) == y_valid).float().mean().item()
        history.append({"epoch": epoch, "valid_accuracy": valid_acc})
        log(f"judge epoch {epoch}: valid accuracy {valid_acc:.4f}")
        if valid_acc > best:
            best = valid_acc
            config = {
                "family": "judge",
                "valid_accuracy": valid_acc,
                "epoch": epoch,
                "command": f"ved judge train --epochs {epochs} --seed {seed}",
            }
            checkpoint.save_model(Path(out), judge, config)

    config: dict = {}
    judge = fit_classifier(x_train, y_train, epochs, batch_size, lr, seed, progress, after_epoch)
    # the choice is made: now, and only now, the test images
    judge.load_state_dict(checkpoint.load_weights(Path(out), device))
    with holdout.final_report("the kept judge's accuracy on test images"):
        x_test, y_test = (torch.as_tensor(a).to(device) for a in data.split("test"))
    test_acc = (judge.predict(x_test.float() / 255) == y_test).float().mean().item()
    checkpoint.save_model(Path(out), judge, {**config, "test_accuracy": test_acc})
    log(f"judge: best valid accuracy {best:.4f}, test accuracy {test_acc:.4f} -> {out}")
    return {"valid_accuracy": best, "test_accuracy": test_acc, "history": history}
