"""The peers (models/textbook_cvae.py, models/flow.py): trained by ved's own loop on real captioned
MNIST, read through ved's caption encoders, and drawing to the same contract as ved's models."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import ved
from ved import captions, checkpoint, vocab
from ved import config as configs
from ved.metrics import mean_losses
from ved.pipeline import Pipeline
from ved.train import fixed_batch, make_split, train

CAPTIONS = ["three plus two", "min nine five seven", "this is a black five on a white background"]


def small(name: str) -> dict:
    """A shipped peer config, shrunk: narrow networks, one epoch of 10 steps of 500 images."""
    config = configs.load(name)
    config["model"].update(caption_hidden=16, caption_width=16, channels=8)  # router: its 300 steps
    if config["model"]["kind"] == "textbook_cvae":
        config["model"].update(hidden=64, latent=8, condition=8)
    config["data"]["train_images"] = 5000
    config["train"].update(batch_size=500, max_epochs=1, eval_images=50, lr=3e-3, ema=0.0)
    return config


def draws_to_the_contract(pipe) -> None:
    images = pipe.generate(CAPTIONS, n=3, seed=0)
    assert images.shape == (3, 3, 28, 28) and images.dtype == np.uint8
    assert images.max() > 128 and images.min() < 64  # ink on a background, not a flat grey
    # each caption draws from its own generator: what it gets does not depend on the others, up to
    # float rounding (docs/http-api.md): a batch of another size may take kernels that round the last
    # bit differently, and the flow's 20 guided steps can carry that to one grey level on 2 threads
    alone = pipe(CAPTIONS[1:2], n=3, generator=[7], output_type="mnist").images[0].astype(int)
    together = pipe(CAPTIONS[:2], n=3, generator=[5, 7], output_type="mnist").images[1].astype(int)
    assert np.abs(together - alone).max() <= 1 and (together != alone).mean() < 0.01
    assert pipe.same_style(n=2, generator=0).shape == (2, 10, 28, 28)
    # the router learnt the families from the words alone, before the first image
    encoder = pipe.model.condition.encoder
    tokens, _ = vocab.encode(CAPTIONS)
    routed = [encoder.families[i] for i in encoder.router_logits(tokens).argmax(1)]
    assert routed == ["arithmetic", "logic", "sentence"]


def test_the_textbook_cvae_trains_in_the_loop_and_draws_to_the_contract(tmp_path, mnist_data):
    config = small("peer-cvae-mixed")
    torch.manual_seed(0)
    untrained = configs.build(configs.resolve(config))
    train(config, tmp_path, progress=False, log=lambda m: None)
    pipe = ved.load(str(tmp_path))
    valid = make_split(mnist_data, config["data"], "valid", "cpu")
    # one epoch lowers the validation loss below an untrained model's (same captions, same noise)
    assert mean_losses(pipe.model, valid)["loss"] < 0.9 * mean_losses(untrained, valid)["loss"]
    draws_to_the_contract(pipe)
    saved = json.loads((tmp_path / checkpoint.CONFIG).read_text())
    assert saved["model"]["kind"] == "textbook_cvae"


def test_the_diffusion_model_learns_in_a_few_steps_and_draws_to_the_contract(mnist_data):
    """A few steps on real captioned digits (a whole epoch of the U-Net costs minutes on 2 cores;
    the loop's hooks run for it in test_models_run_with_the_parser_disabled)."""
    config = configs.resolve(small("peer-diffusion-mixed"))
    torch.manual_seed(0)
    model = configs.build(config)
    train_set = make_split(mnist_data, config["data"], "train", "cpu")
    model.prepare(train_set, seed=0, fresh=True, families=captions.pool_families(config["data"], "train"))
    probe = fixed_batch(make_split(mnist_data, config["data"], "valid", "cpu"), 500, seed=2)
    optimizer = model.optimizer(3e-3)

    def probe_loss():
        torch.manual_seed(1)  # the same times and noise each time
        with torch.no_grad():
            return model.eval().loss(probe)["loss"].item()

    before = probe_loss()
    model.train()
    for batch, _ in zip(train_set.batches(256, torch.Generator().manual_seed(0)), range(60)):
        model.loss(batch)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    assert probe_loss() < 0.7 * before
    draws_to_the_contract(Pipeline(model.eval(), config))


def test_a_time_budget_stops_within_the_epoch_that_spends_it(tmp_path):
    """[train] max_seconds: the peers' budget. The run stops at the step that reaches it, inside the
    epoch, whose weights are then validated and kept; an epoch that ended before it is whole."""
    config = configs.load(str(Path(__file__).parent / "configs" / "tiny-fast.toml"))
    config["train"].update(max_epochs=50, max_seconds=1)
    train(config, tmp_path, progress=False, log=lambda m: None)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) < 50 and rows[-1]["seconds"] >= 1
    assert all(r["seconds"] < 1 and r["steps"] == 10 for r in rows[:-1])  # 5,000 images in batches of 500
    # batches of 5: 1,000 steps an epoch, far more than a second's worth: the budget ends the first
    config["train"]["batch_size"] = 5
    train(config, tmp_path / "long", progress=False, log=lambda m: None)
    rows = [json.loads(line) for line in (tmp_path / "long" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and 0 < rows[0]["steps"] < 1000 and rows[0]["seconds"] >= 1
    assert ved.load(str(tmp_path / "long")).generate(["seven"], n=2).shape == (1, 2, 28, 28)
    with pytest.raises(ValueError, match=r"^\[train\] max_seconds = -1; allowed: a whole number"):
        configs.resolve({**config, "train": {**config["train"], "max_seconds": -1}})


def test_peer_configs_refuse_bad_settings_in_one_line():
    config = configs.load("peer-diffusion-mixed")
    with pytest.raises(ValueError, match=r"drop_caption = 1\.0; allowed: a share in \[0, 1\)"):
        configs.build(configs.resolve({**config, "model": {**config["model"], "drop_caption": 1.0}}))
    with pytest.raises(ValueError, match=r"\[sample\] steps = 0; allowed: a whole number from 1"):
        configs.resolve({**config, "sample": {"steps": 0}})


def test_the_peer_table_sets_each_peer_beside_ved_on_the_data_they_shared():
    from ved.report import peers_table
    from ved.reproduce import PEERS, RUNS

    def scored(accuracy, families):
        r = {"accuracy": accuracy, "fjd": 20.0, "fjd_real": 6.0, "fjd_floor": 5.0, "diversity": 1.0}
        return {f: {"valid": r, "test": r} for f in families}

    cost = {"parameters": 1000, "train_seconds": 900.0, "epochs": 10, "sample_seconds_per_1000": 1.5}
    every = ["label", "sentence", "logic", "arithmetic"]
    peers = {
        "cvae-mixed": {"results": scored(0.99, every), "data_of": "cvae-mixed", **cost},
        "peer-cvae-mixed": {"results": scored(0.89, every), "data_of": "cvae-mixed", **cost},
        "cvae-arithmetic-pairs": {"results": scored(0.93, ["arithmetic"]), **cost},
        "peer-cvae-arithmetic-pairs": {
            "results": scored(0.5, ["arithmetic"]),
            "data_of": RUNS["peer-cvae-arithmetic-pairs"].measured_against,
            **cost,
        },
    }
    lines = peers_table(peers).splitlines()
    assert "| logic | test | peer-cvae-mixed | 89.0% |" in "\n".join(lines)
    pairs = [line for line in lines if line.startswith("| arithmetic-pairs |")]
    models = ["cvae-arithmetic-pairs", "peer-cvae-arithmetic-pairs"]
    assert [line.split(" | ")[2] for line in pairs] == models * 2  # valid, then test
    assert "| peer-cvae-arithmetic-pairs | 1,000 | 900 (10) | 1.50 |" in lines
    for p in PEERS[3:]:  # the split peers
        assert configs.load(RUNS[p].config)["data"]["family"] == "arithmetic"


def test_peers_bring_the_ved_runs_they_are_measured_against_and_nothing_else():
    from ved.reproduce import BEYOND, PAPER, PEERS, RUNS, chosen_runs

    beyond, peers = chosen_runs(quick=False, all_runs=False, peers=True)
    assert peers == PEERS and len(PEERS) == 9
    against = {RUNS[p].measured_against for p in peers}
    splits = ("pairs", "add-primitive", "held-out-result")
    assert against == {"cvae-mixed", *(f"cvae-arithmetic-{s}" for s in splits)}
    assert set(beyond) == against and not set(beyond) & set(PAPER)  # not the rest of --all
    assert chosen_runs(quick=False, all_runs=True, peers=True) == (BEYOND, peers)  # --all has them already
    assert chosen_runs(quick=False, all_runs=False, peers=False) == (["cvae-mixed"], [])
    quick_beyond, quick_peers = chosen_runs(quick=True, all_runs=False, peers=True)
    assert quick_peers == PEERS[:3] and quick_beyond == ["cvae-arithmetic", "cvae-mixed"]


def test_drawing_is_timed_on_100_captions_even_where_a_split_has_fewer():
    from ved.reproduce import RUNS, timing_captions

    mixed = timing_captions(configs.load("cvae-mixed")["data"])
    assert len(mixed) == len(set(mixed)) == 100
    pairs = configs.load(RUNS["peer-cvae-arithmetic-pairs"].measured_against)["data"]
    pool = {c for cs in captions.pool_for(pairs, "valid").values() for c in cs}
    rows = timing_captions(pairs)
    assert len(pool) < 100 and len(rows) == 100 and set(rows) == pool  # every caption, some twice
    assert timing_captions(pairs) == rows  # the same captions in every invocation
