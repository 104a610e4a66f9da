"""Training: the one loop for generative models (early stopping, metrics, resume) and the judge's.

A run folder holds the best weights (model.safetensors + config.json, what
`ved sample` loads), metrics.jsonl, and last/ with the newest weights,
optimizer and random states, so that `--resume` continues exactly. With
[train] ema, the best weights are those of the weights' moving average,
which last/ keeps too.
"""
from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import captions, checkpoint, content, mnist, models
from .errors import is_whole, one_line, shown, shown_value
from .models import caption_encoders
from .batches import CaptionedImages, CaptionPool
from .metrics import judged_accuracy, mean_losses

# Defaults for every config; a TOML file overrides any of them, the command line a few.
DEFAULTS = {
    "model": {"family": "paper_ved"},  # the rest are the model class's own keyword arguments
    "data": {
        "family": "arithmetic",  # label | sentence | logic | arithmetic | mixed
        "caption_seed": 0,  # seeds the logic pools and the arithmetic test captions
        "logic_k": [1, 3],  # distractor counts for logic captions in train and valid
        "logic_test_k": None,  # distractor counts for logic test captions (None: as logic_k)
        "train_max_ops": 1,  # arithmetic: most operations in a training caption; tests have more (up to 5)
        "hold_out_pairs": 0,  # arithmetic: one-operation captions kept out of training, to test on
    },
    "train": {
        "batch_size": 128,
        "lr": 1e-3,  # Adam
        "max_epochs": 200,
        "patience": 10,  # epochs without a better validation score before stopping
        "early_stop_on": "recon",  # the validation loss term that picks the best epoch: "recon" or "loss"
        "min_epochs": 0,
        "seed": 0,
        "threads": 0,  # torch CPU threads; 0 leaves torch's default
        "eval_images": 2000,  # validation (and train) images generated and judged each epoch
        "ema": 0.0,  # > 0: validate, keep and ship a moving average of the weights with this decay
    },
}


# The type and range of every [data] and [train] value, checked when a config is read.
WHOLE, NUMBER = "a whole number", "a number"
RULES = {
    ("data", "family"): (captions.FAMILIES,),
    ("data", "caption_seed"): (WHOLE, 0, 2**31 - 1),
    ("data", "logic_k"): ("range", 1, 8),
    ("data", "logic_test_k"): ("range", 1, 8),
    ("data", "train_max_ops"): (WHOLE, 1, 4),
    ("data", "hold_out_pairs"): (WHOLE, 0, 50),
    ("train", "batch_size"): (WHOLE, 1, 50_000),
    ("train", "lr"): (NUMBER, 1e-8, 10.0),
    ("train", "max_epochs"): (WHOLE, 1, 100_000),
    ("train", "patience"): (WHOLE, 1, 100_000),
    ("train", "early_stop_on"): (("recon", "loss"),),
    ("train", "min_epochs"): (WHOLE, 0, 100_000),
    ("train", "seed"): (WHOLE, 0, 2**63 - 1),
    ("train", "threads"): (WHOLE, 0, 1024),
    ("train", "eval_images"): (WHOLE, 1, 10_000),
}


def resolve(config: dict) -> dict:
    """DEFAULTS overlaid with a config's tables; unknown tables or keys, and values of the wrong type
    or out of range, are errors in one line naming the key and what is allowed."""
    if not isinstance(config, dict):
        raise ValueError(f"a config is a table of tables, got {type(config).__name__}")
    out = copy.deepcopy(DEFAULTS)
    for table, values in config.items():
        if table == "name":  # the run's name (the config file's stem), kept with the weights
            if not isinstance(values, str):
                raise ValueError(f"name = {shown_value(values)}; allowed: text")
            out["name"] = values
            continue
        if table not in out:
            raise ValueError(f"unknown config table [{shown(table, 40)}]; allowed: {', '.join(out)}")
        if not isinstance(values, dict):
            raise ValueError(f"[{table}] must be a table of settings, got {shown_value(values)}")
        for key, value in values.items():
            if table != "model" and key not in out[table]:
                raise ValueError(f"unknown key '{shown(key, 40)}' in [{table}]; allowed: {', '.join(out[table])}")
            out[table][key] = value
    for (table, key), rule in RULES.items():
        _check(table, key, out[table][key], *rule)
    ema = out["train"]["ema"]
    if isinstance(ema, bool) or not isinstance(ema, (int, float)) or not 0 <= ema < 1:
        raise ValueError(f"[train] ema = {shown_value(ema)}; allowed: a decay in [0, 1), 0 for none")
    models.check_config(out["model"])
    if out["model"].get("caption_encoder") == "routed":  # recorded, so that a new default never changes it
        out["model"].setdefault("experts", dict(caption_encoders.DEFAULT_EXPERTS))
    return out


def _check(table: str, key: str, value, kind, low=None, high=None) -> None:
    where = f"[{table}] {key} = {shown_value(value)}"
    if isinstance(kind, tuple):
        if value not in kind or not isinstance(value, str):
            raise ValueError(f"{where}; allowed: {', '.join(kind)}")
    elif kind == "range":
        if value is None and key == "logic_test_k":
            return
        ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(is_whole(v, low, high) for v in value)
        if not ok or value[0] > value[1]:
            raise ValueError(f"{where}; allowed: [lowest, highest], whole numbers from {low} to {high}")
    else:
        real = isinstance(value, float) and math.isfinite(value) and low <= value <= high
        if not (is_whole(value, low, high) or (kind == NUMBER and real)):
            raise ValueError(f"{where}; allowed: {kind} from {low:g} to {high:g}" if kind == NUMBER
                             else f"{where}; allowed: {kind} from {low:,} to {high:,}")


def load_config(path) -> dict:
    """A TOML config file, resolved and checked; ValueError in one line naming the file otherwise."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"config '{path}' is a folder; give a TOML file such as configs/paper-arithmetic.toml")
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"config file '{path}' not found; see configs/ for examples") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"config '{path}' cannot be read: {e.strerror if isinstance(e, OSError) else e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"config '{path}' is not valid TOML: {str(e).splitlines()[0]}") from None
    try:
        config = resolve(raw)
        with torch.random.fork_rng(devices=[]):  # built once to run the model's own checks; no RNG consumed
            models.build(config["model"])
        return config
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def make_split(data: mnist.MNIST, data_cfg: dict, split: str, device) -> CaptionedImages:
    images, labels = data.split(split)
    return CaptionedImages(images, labels, CaptionPool(captions.pool_for(data_cfg, split), device), device)


def fixed_batch(dataset: CaptionedImages, size: int, seed: int):
    """The same images and caption draws every epoch, so epochs compare like with like."""
    g = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(dataset), generator=g)[:size].to(dataset.device)
    return dataset.batch(index, dataset.pool.draw(dataset.labels[index], g), dedupe=False)


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


def train(config: dict, out, device: str = "cpu", resume: bool = False, judge=None,
          progress: bool = True, log=print, dist=None) -> dict:
    """Train a generative model; returns the final train state summary. `dist`: see distributed.py."""
    out = Path(out)
    cfg = resolve(config)
    tcfg = cfg["train"]
    rank, world = (dist.rank, dist.world_size) if dist else (0, 1)
    is_main = rank == 0
    if tcfg["threads"]:
        torch.set_num_threads(tcfg["threads"])
    torch.manual_seed(tcfg["seed"] + rank)
    generator = torch.Generator().manual_seed(tcfg["seed"])  # identical on every rank: same epoch order

    model = models.build(cfg["model"]).to(device)  # a config the model refuses fails before MNIST loads
    last = out / "last"
    saved = None
    if resume and is_main:
        checkpoint.recover(last)  # a kill inside the last save leaves the whole previous checkpoint
        checkpoint.remove_temp_files(out)
    if dist:
        dist.barrier()
    if resume:
        saved = checkpoint.load_train_state(last)  # checked before the long work starts
    data = mnist.load(progress=progress and is_main, log=log)
    train_set = make_split(data, cfg["data"], "train", device)
    valid_set = make_split(data, cfg["data"], "valid", device)
    if getattr(model, "content_classes", 0):  # seeded: a resumed run discovers the same classes
        content.discover(train_set, model.content_classes, seed=tcfg["seed"])
    optimizer = torch.optim.Adam(model.parameters(), lr=tcfg["lr"], foreach=True)  # measured faster on CPU
    state = {"epoch": 0, "best_valid": math.inf, "best_epoch": -1, "bad_epochs": 0, "seconds": 0.0}
    if saved is not None:
        try:
            model.load_state_dict(checkpoint.load_weights(last, device))
            optimizer.load_state_dict(saved["optimizer"])
            _set_rng_states(generator, saved["rng"], rank)
            state = {**state, **saved["state"]}
            int(state["epoch"])
        except (RuntimeError, ValueError, KeyError, IndexError, TypeError) as e:
            raise checkpoint.ModelError(f"{last} does not fit this config ({one_line(e)}); resume with the config "
                                        "the run was trained with, or train afresh without --resume") from None
        if is_main:
            log(f"resuming {out} after epoch {state['epoch']}")
    else:
        if resume and is_main:
            log(f"nothing to resume in {out}; starting fresh")
        if hasattr(model, "fit_captions"):
            t0 = time.perf_counter()
            pool = train_set.pool
            loss = model.fit_captions(pool.tokens, pool.lengths, pool.classes,
                                      captions.pool_families(cfg["data"], "train"), progress=progress and is_main)
            state["seconds"] += time.perf_counter() - t0
            if is_main:
                log(f"caption classes fitted: loss {loss:.3f} ({state['seconds']:.1f}s)")
    # With `ema`, a copy of the model follows the weights' moving average; it is the one validated,
    # whose p(s | k) is fitted and whose weights are kept. Only parameters are averaged: the copy's
    # buffers (its fitted p(s | k)) are its own.
    ema = copy.deepcopy(model).requires_grad_(False) if tcfg["ema"] else None
    if ema is not None and saved is not None and "ema" in saved:  # else it starts from the resumed weights
        ema.load_state_dict(saved["ema"])
    kept = ema if ema is not None else model
    net = dist.wrap(model) if dist else model
    metrics_path = out / "metrics.jsonl"
    history = _read_metrics(metrics_path)[: state["epoch"]]  # drop epochs logged after the last checkpoint
    valid_probe = fixed_batch(valid_set, tcfg["eval_images"], seed=2)
    train_probe = fixed_batch(train_set, tcfg["eval_images"], seed=3)
    per_rank = math.ceil(len(train_set) / tcfg["batch_size"])

    while state["epoch"] < tcfg["max_epochs"] and not state.get("stopped"):
        epoch = state["epoch"] + 1
        t0 = time.perf_counter()
        state.pop("style_refitted", None)  # a run resumed for more epochs refits after them again
        model.train()
        sums = {}
        bar = tqdm(train_set.batches(tcfg["batch_size"], generator, rank=rank, world_size=world),
                   total=per_rank, desc=f"epoch {epoch}", leave=False, disable=not (progress and is_main))
        for batch in bar:
            losses = net(batch)  # forward is the loss, so a DDP wrapper syncs gradients
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            optimizer.step()
            if ema is not None:
                _follow(ema, model, tcfg["ema"], state)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v.detach()
        train_losses = {k: (v / per_rank).item() for k, v in sums.items()}
        if dist:
            train_losses = dist.mean(train_losses)
        if hasattr(kept, "fit_style_prior"):  # seeded by the epoch: every rank, and a resume, fits the same
            kept.fit_style_prior(train_set, torch.Generator().manual_seed(tcfg["seed"] + epoch))
        state["seconds"] += time.perf_counter() - t0
        # Every rank validates (fixed seeds, synced weights): identical early-stop decisions, no broadcast.
        valid_losses = mean_losses(kept, valid_set)
        row = {"epoch": epoch, "seconds": round(state["seconds"], 3),
               **{f"train_{k}": v for k, v in train_losses.items()},
               **{f"valid_{k}": v for k, v in valid_losses.items()}}
        if judge is not None:  # mean_losses left the model in eval mode
            row["train_accuracy"] = judged_accuracy(kept, judge, train_probe)
            row["valid_accuracy"] = judged_accuracy(kept, judge, valid_probe)
        history.append(row)
        improved = valid_losses[tcfg["early_stop_on"]] < state["best_valid"]
        if improved:
            state.update(best_valid=valid_losses[tcfg["early_stop_on"]], best_epoch=epoch, bad_epochs=0)
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        state["stopped"] = state["bad_epochs"] >= tcfg["patience"] and epoch >= tcfg["min_epochs"]
        rng = _rng_states(generator, dist)  # every rank takes part in gathering its own stream
        if is_main:
            # Order matters for a kill at any point: metrics and best weights first,
            # the resume state last, so that resume never skips an epoch's outputs.
            checkpoint.atomic_write_text(metrics_path, "".join(json.dumps(r) + "\n" for r in history))
            if improved:
                checkpoint.save_model(out, kept, cfg)
            resume_state = {"optimizer": optimizer.state_dict(), "rng": rng, "state": dict(state)}
            if ema is not None:
                resume_state["ema"] = ema.state_dict()
            checkpoint.save_checkpoint(last, model, cfg, resume_state)
            acc = f" valid acc {row['valid_accuracy']:.3f}" if "valid_accuracy" in row else ""
            if progress:
                tqdm.write(f"epoch {epoch}: train recon {train_losses['recon']:.4f} "
                           f"valid recon {valid_losses['recon']:.4f}{acc} ({state['seconds']:.1f}s)")
    if is_main and getattr(model, "final_fit_steps", 0) and not state.get("style_refitted"):
        # A mixture p(s | k) is refitted afresh to the chosen epoch's styles: the fits that followed
        # the styles from epoch to epoch can end with a few broad components (README "Beyond the paper").
        # The fit ignores the last one, so a run killed here does it again the same way on resume.
        t0 = time.perf_counter()
        model.load_state_dict(checkpoint.load_weights(out, device))
        model.fit_style_prior(train_set, torch.Generator().manual_seed(tcfg["seed"]), steps=model.final_fit_steps)
        state.update(seconds=state["seconds"] + time.perf_counter() - t0, style_refitted=True)
        checkpoint.save_model(out, model, cfg)
        checkpoint.save_checkpoint(last, checkpoint.load_weights(last), cfg,
                                   {**checkpoint.load_train_state(last), "state": dict(state)})
        log(f"style prior refitted afresh to epoch {state['best_epoch']}'s styles ({state['seconds']:.1f}s in all)")
    return {"state": state, "history": history}


@torch.no_grad()
def _follow(ema, model, decay: float, state: dict) -> None:
    """One step of the moving average. Its decay after n steps is min(decay, (1 + n) / (10 + n)),
    the warm-up of diffusers' EMAModel, so that the random first weights soon fade."""
    n = state["ema_steps"] = state.get("ema_steps", 0) + 1
    weight = 1 - min(decay, (1 + n) / (10 + n))
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), weight)


def _read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as e:
        raise checkpoint.ModelError(f"{path} cannot be read ({one_line(e)}); train this run afresh") from None


# ---------------------------------------------------------------- the judge

def _shift(images: torch.Tensor, generator: torch.Generator, pixels: float = 2.0) -> torch.Tensor:
    """Random per-image translations (and slight rotation): the judge must not depend on centring."""
    n = len(images)
    angle = (torch.rand(n, generator=generator) - 0.5) * 0.3
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 2 * pixels / 14
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = angle.cos(), -angle.sin(), angle.sin(), angle.cos()
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta.to(images.device), images.shape, align_corners=False)
    return F.grid_sample(images, grid, align_corners=False)


def train_judge(out, device: str = "cpu", epochs: int = 12, batch_size: int = 128, lr: float = 2e-3,
                seed: int = 0, progress: bool = True, log=print) -> dict:
    """Train the evaluator CNN on the 50k training split; keep the epoch best on validation."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    data = mnist.load(progress=progress, log=log)
    x_train, y_train = (torch.as_tensor(a).to(device) for a in data.split("train"))
    x_valid, y_valid = (torch.as_tensor(a).to(device) for a in data.split("valid"))
    x_test, y_test = (torch.as_tensor(a).to(device) for a in data.split("test"))
    judge = models.Judge().to(device)
    opt = torch.optim.Adam(judge.parameters(), lr=lr)
    steps = epochs * math.ceil(len(y_train) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    best, history = -1.0, []
    for epoch in range(1, epochs + 1):
        judge.train()
        order = torch.randperm(len(y_train), generator=g).to(device)
        batches = range(0, len(order), batch_size)
        for lo in tqdm(batches, desc=f"judge epoch {epoch}", leave=False, disable=not progress):
            idx = order[lo: lo + batch_size]
            x = _shift(x_train[idx].unsqueeze(1).float() / 255, g)
            loss = F.cross_entropy(judge(x), y_train[idx].long())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        judge.eval()
        valid_acc = (judge.predict(x_valid.float() / 255) == y_valid).float().mean().item()
        history.append({"epoch": epoch, "valid_accuracy": valid_acc})
        log(f"judge epoch {epoch}: valid accuracy {valid_acc:.4f}")
        if valid_acc > best:
            best = valid_acc
            test_acc = (judge.predict(x_test.float() / 255) == y_test).float().mean().item()
            config = {"family": "judge", "valid_accuracy": valid_acc, "test_accuracy": test_acc,
                      "epoch": epoch, "command": f"ved judge train --epochs {epochs} --seed {seed}"}
            checkpoint.save_model(Path(out), judge, config)
    log(f"judge: best valid accuracy {best:.4f}, test accuracy {test_acc:.4f} -> {out}")
    return {"valid_accuracy": best, "test_accuracy": test_acc, "history": history}
