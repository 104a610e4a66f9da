"""Training: the one loop for generative models (early stopping, metrics, resume).

A run folder holds the best weights (model.safetensors + config.json, what
`ved sample` loads), metrics.jsonl, and last/ with the newest weights,
optimizer and random states, so that `--resume` continues exactly. With
[train] ema, the best weights are those of the weights' moving average,
which last/ keeps too. The model runs its own steps around the loop through
the hooks of models/base.py; the loop knows no model's recipe.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from . import about, captions, checkpoint, holdout, mnist, strips, vocab
from . import config as configs
from .batches import CaptionedImages, CaptionPool
from .errors import one_line
from .metrics import judged_probe, mean_losses, mean_pairwise_distance
from .precision import autocast_for
from .precision import resolve as resolve_precision


def make_split(data: mnist.MNIST, data_cfg: dict, split: str, device) -> CaptionedImages:
    images, labels = data.split(split)
    if split == "train" and data_cfg.get("train_images"):
        images, labels = images[: data_cfg["train_images"]], labels[: data_cfg["train_images"]]
    numbers = captions.number_pool_for(data_cfg, split)
    return CaptionedImages(
        images,
        labels,
        CaptionPool(captions.pool_for(data_cfg, split), device),
        device,
        strips.NumberCaptions(numbers, device) if numbers else None,
    )


def fixed_batch(dataset: CaptionedImages, size: int, seed: int):
    """The same images and caption draws every epoch, so epochs compare like with like."""
    g = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(dataset), generator=g)[:size].to(dataset.device)
    return dataset.batch(index, dataset.pool.draw(dataset.labels[index], g), dedupe=False)


class EMA:
    """A copy of the model that follows the weights' moving average: the one validated, whose hooks run
    and whose weights are kept. Only parameters are averaged: the copy's buffers (a fitted p(s | k))
    are its own. Its decay after n steps is min(decay, (1 + n) / (10 + n)), the warm-up of diffusers'
    EMAModel, so that the random first weights soon fade."""

    def __init__(self, model: torch.nn.Module, decay: float, steps: int = 0):
        self.model = copy.deepcopy(model).requires_grad_(False)
        self.decay, self.steps = decay, steps

    @torch.no_grad()
    def follow(self, model: torch.nn.Module) -> None:
        self.steps += 1
        weight = 1 - min(self.decay, (1 + self.steps) / (10 + self.steps))
        torch._foreach_lerp_(list(self.model.parameters()), list(model.parameters()), weight)


def train_step(net, model, batch, optimizer, ema: EMA | None, autocast: dict) -> dict:
    """One step: the losses under `autocast` (validation and the model's own fits stay in fp32),
    backward, the optimiser, then the moving average follows `model`, the module `net` may wrap."""
    with torch.autocast(**autocast):
        losses = net(batch)  # forward is the loss, so a DDP wrapper syncs gradients
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    optimizer.step()
    if ema is not None:
        ema.follow(model)
    return losses


def learning_rate(tcfg: dict, step: int, total: int) -> float:
    """[train] lr at `step` (from 0) of `total` under [train] schedule, times (step + 1) / warmup_steps
    over the first warmup_steps."""
    done = min(step / max(total, 1), 1.0)
    factor = {"constant": 1.0, "linear": 1 - done, "cosine": 0.5 * (1 + math.cos(math.pi * done))}
    warm = min(1.0, (step + 1) / tcfg["warmup_steps"]) if tcfg["warmup_steps"] else 1.0
    return tcfg["lr"] * factor[tcfg["schedule"]] * warm


def _rng_states(generator, dist=None):
    """Random states for an exact resume; the global stream per rank (it drives z noise)."""
    own = torch.get_rng_state()
    states = {"generator": generator.get_state(), "torch": dist.gather(own) if dist else [own]}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(generator, states, rank: int = 0):
    generator.set_state(states["generator"])
    torch.set_rng_state(states["torch"][rank])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def train(
    config: dict,
    out,
    device: str = "cpu",
    resume: bool = False,
    judge=None,
    progress: bool = True,
    log=print,
    dist=None,
    overwrite: bool = False,
) -> dict:
    """Train a generative model; returns the final train state summary. `dist`: see distributed.py.
    A folder `out` that holds anything is refused unless `resume` (continue the run there) or
    `overwrite` (remove its run files first). Everything it chooses (early stopping, the kept
    weights) sees training and validation data only: it runs sealed, so a read of the test split
    anywhere inside raises."""
    threads = torch.get_num_threads()
    try:
        with holdout.sealed():
            return _train(config, out, device, resume, judge, progress, log, dist, overwrite)
    finally:
        torch.set_num_threads(threads)  # `[train] threads` is this run's, not the caller's process's


RUN_FILES = (checkpoint.WEIGHTS, checkpoint.CONFIG, "metrics.jsonl", "last", ".last.old")


def claim_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """A fresh run never writes over another: an existing folder that holds anything is refused
    unless the caller resumes it or asks to overwrite it (then only ved's run files are removed)."""
    if resume or not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise checkpoint.ModelError(
            f"{out} exists and is not empty; --resume continues the run in it, --overwrite trains "
            "afresh over it, or choose another --out"
        )
    for name in RUN_FILES:
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    for partial in out.glob(".last.new-*"):
        shutil.rmtree(partial, ignore_errors=True)


@dataclass
class Loop:
    """What the epochs of one run share, set up once by _train."""

    cfg: dict
    out: Path
    model: torch.nn.Module  # the model the optimiser trains
    kept: torch.nn.Module  # what is validated, refitted and saved: the moving average, if any
    net: torch.nn.Module  # `model`, or its DDP wrapper under torchrun
    optimizer: torch.optim.Optimizer
    ema: EMA | None
    generator: torch.Generator  # the epochs' batch order: the same on every rank
    train_set: object
    valid_set: object
    judge: object
    dist: object
    progress: bool
    history: list
    precision: str = "fp32"
    autocast: dict = field(default_factory=dict)
    probes: tuple = ()  # fixed (train, valid) batches the judge reads after every epoch

    @property
    def is_main(self) -> bool:
        return self.dist is None or self.dist.rank == 0


def _train(config, out, device, resume, judge, progress, log, dist, overwrite) -> dict:
    out, last = Path(out), Path(out) / "last"
    if dist is None or dist.rank == 0:
        claim_run_folder(out, resume, overwrite)
    if dist:
        dist.barrier()
    cfg = {**configs.resolve(config), "provenance": about.provenance(mnist.CONTENT_SHA256)}
    tcfg = cfg["train"]
    rank = dist.rank if dist else 0
    is_main = rank == 0
    if tcfg["threads"]:
        torch.set_num_threads(tcfg["threads"])
    torch.manual_seed(tcfg["seed"] + rank)
    generator = torch.Generator().manual_seed(tcfg["seed"])  # identical on every rank: same epoch order

    model = configs.build(cfg).to(device)  # a config the model refuses fails before MNIST loads
    saved = _resumable(last, out, is_main, dist) if resume else None
    if saved is not None:
        _check_same_run(last, cfg)
    data = mnist.load(progress=progress and is_main, log=log)
    train_set = make_split(data, cfg["data"], "train", device)
    valid_set = make_split(data, cfg["data"], "valid", device)
    optimizer = model.optimizer(tcfg["lr"])
    state = {"epoch": 0, "best_valid": math.inf, "best_epoch": -1, "bad_epochs": 0, "seconds": 0.0}
    t0 = time.perf_counter()
    note = model.prepare(
        train_set,
        seed=tcfg["seed"],
        fresh=saved is None,
        progress=progress and is_main,
        families=captions.pool_families(cfg["data"], "train"),
    )
    if saved is not None:
        state = _restore(saved, last, model, optimizer, generator, rank, state, device)
        if is_main:
            log(f"resuming {out} after epoch {state['epoch']}")
    else:
        state["seconds"] += time.perf_counter() - t0
        if is_main and resume:
            log(f"nothing to resume in {out}; starting fresh")
        if is_main and note:
            log(f"{note} ({state['seconds']:.1f}s)")
    ema = EMA(model, tcfg["ema"], state.get("ema_steps", 0)) if tcfg["ema"] else None
    if ema is not None and saved is not None and "ema" in saved:  # else it starts from the resumed weights
        try:
            ema.model.load_state_dict(saved["ema"])
        except (RuntimeError, TypeError, AttributeError, KeyError) as e:
            raise checkpoint.ModelError(f"{last}: its moving average does not fit ({one_line(e)})") from None
    precision = resolve_precision(tcfg["precision"], device)
    net = dist.wrap(model) if dist else model
    if tcfg["compile"]:  # validation and the model's own fits stay eager: they run once an epoch
        net = torch.compile(net, mode="reduce-overhead" if torch.device(device).type == "cuda" else None)
    loop = Loop(
        cfg, out, model, ema.model if ema is not None else model, net,
        optimizer, ema, generator, train_set, valid_set, judge, dist, progress,
        # epochs logged after the last checkpoint are dropped: the resumed run logs them again
        checkpoint.read_metrics(out / "metrics.jsonl", state["epoch"]),
        precision, autocast_for(precision, device),
        (fixed_batch(train_set, tcfg["eval_images"], seed=3),
         fixed_batch(valid_set, tcfg["eval_images"], seed=2)),
    )  # fmt: skip
    while state["epoch"] < tcfg["max_epochs"] and not state.get("stopped"):
        _epoch(loop, state, state["epoch"] + 1)
    if is_main and model.finishes and not state.get("finished"):
        _finish(model, out, last, cfg, train_set, state, device, log)
    if is_main and saved is not None:
        _adopt_sampling(model, out, cfg, device, log)
    checked = is_main and tcfg["check_collapse"]
    collapsed = collapse_of(out, cfg, train_set, loop.history, device) if checked else None
    if collapsed and is_main:
        log(f"{out}: {collapsed}")
    if dist:  # every rank leaves together, after rank 0's last writes: none tears the group down early
        dist.barrier()
    return {"state": state, "history": loop.history, "collapsed": collapsed}


CHANCE = 0.2  # a probe accuracy under this is chance (10%) with room for a lucky batch
CHECK_IMAGES = 50  # samples per digit for the diversity check


@torch.no_grad()
def collapse_of(out: Path, cfg: dict, train_set, history: list, device) -> str | None:
    """Why the kept model of a finished run is collapsed, or None: its judged probe at chance (the
    right classes lost), or its samples of each digit without the variety its family should have
    (one image per class: a posterior that ignores the style). The model is kept either way."""
    accuracy = history[-1].get("valid_accuracy") if history else None
    if accuracy is not None and accuracy < CHANCE:
        return (
            f"the run collapsed: the judge reads {accuracy:.0%} of its validation samples as their "
            "caption's digit (chance is 10%); its caption side may have failed to fit"
        )
    least = configs.model_class(cfg["model"]).min_diversity
    if least is None:
        return None
    model = configs.build(cfg).to(device)
    model.load_state_dict(checkpoint.load_weights(out, device))
    model.eval()
    named = captions.first_per_digit(captions.pool_for(cfg["data"], "train"))
    digits = list(named)
    tokens, lengths = vocab.encode(list(named.values()))
    g = torch.Generator().manual_seed(0)
    drawn = model.generate(tokens.to(device), lengths.to(device), CHECK_IMAGES, g, **cfg["sample"]).float()
    drawn = strips.one_cell(drawn)[0]
    images, labels = train_set.images.cpu(), train_set.labels.cpu()
    ratios = []
    for row, d in zip(drawn.cpu(), digits):
        real = images[labels == d][:CHECK_IMAGES].float() / 255
        ratios.append(mean_pairwise_distance(row) / mean_pairwise_distance(real))
    diversity = sum(ratios) / len(ratios)
    if diversity < least:
        return (
            f"the run collapsed: its samples of each digit barely vary (diversity {diversity:.2f} of real "
            f"digits', where its family reaches {least} or more); its posterior may ignore "
            "the style"
        )
    return None


def _epoch(loop: Loop, state: dict, epoch: int) -> None:
    """One epoch's steps, the model's refit after them, validation, and the run's files."""
    tcfg, dist = loop.cfg["train"], loop.dist
    t0 = time.perf_counter()
    state.pop("finished", None)  # a run resumed for more epochs finishes after them again
    loop.model.train()
    sums, steps = {}, 0
    rank, world = (dist.rank, dist.world_size) if dist else (0, 1)
    bar = tqdm(
        loop.train_set.batches(tcfg["batch_size"], loop.generator, rank=rank, world_size=world),
        total=math.ceil(len(loop.train_set) / tcfg["batch_size"]),
        desc=f"epoch {epoch}",
        leave=False,
        disable=not (loop.progress and loop.is_main),
    )
    per_epoch = bar.total
    for batch in bar:
        rate = learning_rate(tcfg, (epoch - 1) * per_epoch + steps, tcfg["max_epochs"] * per_epoch)
        for group in loop.optimizer.param_groups:  # from the step's index: a resume continues it exactly
            group["lr"] = rate
        losses = train_step(loop.net, loop.model, batch, loop.optimizer, loop.ema, loop.autocast)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v.detach()  # read once, after the epoch: no sync per step
        steps += 1
        # A time budget ends within the epoch that spends it: a peer whose epoch takes 7 minutes
        # gets its 15 minutes, not up to 22. Under torchrun the ranks would stop at different
        # steps, so there it ends after the epoch.
        if not dist and 0 < tcfg["max_seconds"] <= state["seconds"] + time.perf_counter() - t0:
            break
    if loop.ema is not None:
        state["ema_steps"] = loop.ema.steps
    train_losses = {k: (v / max(steps, 1)).item() for k, v in sums.items()}
    if dist:
        train_losses = dist.mean(train_losses)
    # seeded by the epoch: every rank, and a resume, runs the same. Under the step's precision:
    # the cvae's refit of p(s | k) encodes every training image, 4 s in fp32 against 2 in bf16
    # (docs/speed.md); the fit after the last epoch (`finish`) stays in fp32.
    with torch.autocast(**loop.autocast):
        loop.kept.after_epoch(loop.train_set, torch.Generator().manual_seed(tcfg["seed"] + epoch))
    state["seconds"] += time.perf_counter() - t0
    _end_epoch(loop, state, epoch, steps, train_losses)


def _end_epoch(loop: Loop, state: dict, epoch: int, steps: int, train_losses: dict) -> None:
    """Validation, early stopping and the run's files after an epoch."""
    tcfg = loop.cfg["train"]
    # Every rank validates (fixed seeds, synced weights): identical early-stop decisions, no broadcast.
    valid_losses = mean_losses(loop.kept, loop.valid_set)
    row = {
        "epoch": epoch,
        "seconds": round(state["seconds"], 3),
        "steps": steps,  # fewer than a whole epoch's where a time budget ended it
        "lr": loop.optimizer.param_groups[0]["lr"],  # its last step's: [train] schedule
        "precision": loop.precision,
        **{f"train_{k}": v for k, v in train_losses.items()},
        **{f"valid_{k}": v for k, v in valid_losses.items()},
    }
    if loop.judge is not None:  # mean_losses left the model in eval mode
        for split, probe in zip(("train", "valid"), loop.probes):
            judged = judged_probe(loop.kept, loop.judge, probe, loop.cfg["sample"], fd=split == "valid")
            row.update({f"{split}_{name}": value for name, value in judged.items()})
    loop.history.append(row)
    improved = valid_losses[tcfg["early_stop_on"]] < state["best_valid"]
    if improved:
        state.update(best_valid=valid_losses[tcfg["early_stop_on"]], best_epoch=epoch, bad_epochs=0)
    else:
        state["bad_epochs"] += 1
    state["epoch"] = epoch
    patience_out = state["bad_epochs"] >= tcfg["patience"] and epoch >= tcfg["min_epochs"]
    budget_spent = 0 < tcfg["max_seconds"] <= state["seconds"]
    state["stopped"] = patience_out or budget_spent
    rng = _rng_states(loop.generator, loop.dist)  # every rank takes part in gathering its own stream
    if not loop.is_main:
        return
    # Order matters for a kill at any point: metrics and best weights first,
    # the resume state last, so that resume never skips an epoch's outputs.
    out = loop.out
    checkpoint.atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in loop.history))
    if improved:
        checkpoint.save_model(out, loop.kept, loop.cfg)
    resume_state = {"optimizer": loop.optimizer.state_dict(), "rng": rng, "state": dict(state)}
    if loop.ema is not None:
        resume_state["ema"] = loop.ema.model.state_dict()
    checkpoint.save_checkpoint(out / "last", loop.model, loop.cfg, resume_state)
    acc = f" valid acc {row['valid_accuracy']:.3f}" if "valid_accuracy" in row else ""
    if loop.progress:
        tqdm.write(
            f"epoch {epoch}: train recon {train_losses['recon']:.4f} "
            f"valid recon {valid_losses['recon']:.4f}{acc} ({state['seconds']:.1f}s)"
        )


@contextmanager
def _or_train_afresh(folder: Path):
    """A run file that cannot be read: its one-line error says how to start over."""
    try:
        yield
    except checkpoint.ModelError as e:
        raise checkpoint.ModelError(f"{e}; delete {folder} to train this run afresh") from None


def _finish(model, out: Path, last: Path, cfg: dict, train_set, state: dict, device, log) -> None:
    """The model's last step on the best weights (models/base.py `finish`). It ignores the last
    checkpoint's weights, so a run killed here does it again the same way on resume."""
    t0 = time.perf_counter()
    with _or_train_afresh(out):
        model.load_state_dict(checkpoint.load_weights(out, device))
    if not model.finish(train_set, torch.Generator().manual_seed(cfg["train"]["seed"])):
        return
    state.update(seconds=state["seconds"] + time.perf_counter() - t0, finished=True)
    checkpoint.save_model(out, model, cfg)
    checkpoint.save_checkpoint(
        last, checkpoint.load_weights(last), cfg, {**checkpoint.load_train_state(last), "state": dict(state)}
    )
    log(f"finished on epoch {state['best_epoch']}'s weights ({state['seconds']:.1f}s in all)")


# [train] settings a resumed run may change: they decide when training stops and what it logs,
# not what a step does
CHANGEABLE_ON_RESUME = (
    "max_epochs", "max_seconds", "patience", "min_epochs", "eval_images", "threads", "check_collapse"
)  # fmt: skip


def _check_same_run(last: Path, cfg: dict) -> None:
    """A resumed run must go on as it began: another [model], [data] or training setting would mix two
    runs in one set of weights (and `ved reproduce` would report a run its config no longer makes)."""
    with _or_train_afresh(last.parent):
        trained = configs.of_folder(last)
    for table in ("model", "data", "train"):
        for key in sorted(set(trained[table]) | set(cfg[table])):
            was, now = trained[table].get(key), cfg[table].get(key)
            # a falling rate is laid out over max_epochs: more epochs would bend the rest of its line
            scheduled = key == "max_epochs" and cfg["train"]["schedule"] != "constant"
            if was != now and (scheduled or not (table == "train" and key in CHANGEABLE_ON_RESUME)):
                raise checkpoint.ModelError(
                    f"{last.parent} was trained with [{table}] {key} = {was!r}, and this config has "
                    f"{now!r}; resume with the config it was trained with, or delete the folder "
                    "(or choose another) to train this config afresh"
                )


def _adopt_sampling(model, out: Path, cfg: dict, device, log) -> None:
    """[sample] says how the model draws, not how it trains: a resumed run takes the config's, so that
    editing it needs no retraining. The saved weights are written back unchanged beside it."""
    if not (out / checkpoint.CONFIG).exists():  # no epoch finished yet: nothing to draw from
        return
    with _or_train_afresh(out):  # the checkpoint in last/ is whole: no epoch is lost
        saved = checkpoint.load_config(out)
        if saved.get("sample") == cfg["sample"]:
            return
        model.load_state_dict(checkpoint.load_weights(out, device))
    checkpoint.save_model(out, model, {**saved, "sample": cfg["sample"]})
    log(f"{out}: sampling settings now {cfg['sample']}")


def _resumable(last: Path, out: Path, is_main: bool, dist) -> dict | None:
    """The saved train state, checked before the long work starts; None if there is none."""
    if is_main:
        checkpoint.recover(last)  # a kill inside the last save leaves the whole previous checkpoint
        checkpoint.remove_temp_files(out)
    if dist:
        dist.barrier()
    return checkpoint.load_train_state(last)


def _restore(saved: dict, last: Path, model, optimizer, generator, rank: int, state: dict, device) -> dict:
    try:
        model.load_state_dict(checkpoint.load_weights(last, device))
        checkpoint.check_optimizer_state(saved["optimizer"], optimizer)
        optimizer.load_state_dict(saved["optimizer"])
        _set_rng_states(generator, saved["rng"], rank)
    except (RuntimeError, ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise checkpoint.ModelError(
            f"{last} does not fit this config ({one_line(e)}); resume with the config "
            "the run was trained with, or train afresh without --resume"
        ) from None
    state = {**state, **saved["state"]}
    return state
