"""`ved reproduce`: MNIST, judge, the paper's VED on every family, the conditional VAE on every family
and split, metrics, figures, report.

Runs live in OUT/runs/<name> and resume, so a second call skips finished work.
"""
from __future__ import annotations

import json
import random
import re
import shutil
import time
from pathlib import Path

import torch
from tqdm import tqdm

from . import captions, checkpoint, metrics, mnist, report, vocab
from .pipeline import DEFAULT_MODEL, WEIGHTS_DIR, Pipeline, device_of, load_generator, load_judge
from .train import load_config, make_split, train, train_judge

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
PAPER_FAMILIES = ("label", "sentence", "logic", "arithmetic")
FULL_MAX_EPOCHS = 30  # the paper's run early-stopped at 48; this cap keeps its part of the study under 15 minutes
PUBLISHED = "14–15%"  # the paper's Figure 3 (its code's own scoring), all families
# Beyond the paper: the conditional VAE on every family, on all of them at once (mixed), and both
# models on the SCAN-style splits.
SPLIT_VARIANTS = ("arithmetic-pairs", "arithmetic-length")
BEYOND = ([f"cvae-{f}" for f in (*PAPER_FAMILIES, "mixed", *SPLIT_VARIANTS)]
          + [f"paper-{v}" for v in SPLIT_VARIANTS])
QUICK_BEYOND = ["cvae-arithmetic"]  # --quick smoke-tests the section with one short run
SHIPPED_BEYOND = (DEFAULT_MODEL, "cvae-arithmetic")  # --ship: the default and the arithmetic-only model


def config_for(name: str) -> dict:
    path = CONFIG_DIR / f"{name}.toml"
    if not path.exists():
        raise FileNotFoundError(f"config {path} not found; run ved reproduce from a source checkout")
    config = load_config(path)
    config["name"] = name
    return config


def figure4_captions(seed: int = 0, pool: dict[int, list[str]] | None = None) -> list[str]:
    """Test captions, one per digit, cycling through the pool's operation counts (2..5 by default)."""
    pool = pool or captions.caption_pool("arithmetic", "test", seed)
    rng = random.Random(seed)  # pools are sorted; the first caption of each would all start alike
    counts = sorted({captions.operation_count(c) for p in pool.values() for c in p})
    return [rng.choice([c for c in pool[d] if captions.operation_count(c) == counts[d % len(counts)]] or pool[d])
            for d in range(10)]


def caption_grid(model, rows: list[str], device: str, path: Path, title: str) -> None:
    """Eight samples (seed 0) per caption, one row each, the caption and its digit at the left."""
    images = Pipeline(model, device=device).generate(rows, n=8, seed=0)
    report.sample_grid(images, [f"{c}  (= {captions.parse(c)})" for c in rows], path, title=title)


def reproduce(out: Path, quick: bool = False, device: str = "cpu", retrain_judge: bool = False,
              readme: Path | None = None, ship: bool = False) -> Path:
    out = Path(out)
    device = str(device_of(device))
    names = [f"paper-{f}" for f in PAPER_FAMILIES]
    beyond = QUICK_BEYOND if quick else BEYOND
    stages = (["MNIST", "judge"] + [f"train {n}" for n in names + beyond] + [f"evaluate {n}" for n in names + beyond]
              + ["report"])
    bar = tqdm(stages, desc="reproduce", bar_format="{desc}: {n}/{total} stages [{elapsed}]")
    started = time.perf_counter()

    def stage(name):
        bar.set_description(f"reproduce: {name}")
        bar.update(1)

    stage("MNIST")
    data = mnist.load(log=tqdm.write)
    stage("judge")
    judge_dir = WEIGHTS_DIR / "judge"
    if retrain_judge or not (judge_dir / checkpoint.WEIGHTS).exists():
        judge_dir = out / "runs" / "judge"
        train_judge(judge_dir, device, epochs=2 if quick else 12, log=tqdm.write)
    judge = load_judge(judge_dir, device)
    judge_info = checkpoint.load_config(judge_dir)

    histories, runs = {}, {}
    for name in names + beyond:
        stage(f"train {name}")
        config = config_for(name)
        quick_epochs = 1 if name in beyond else 2
        config["train"]["max_epochs"] = quick_epochs if quick else min(config["train"]["max_epochs"], FULL_MAX_EPOCHS)
        config["train"]["eval_images"] = 500 if quick else 1000  # per-epoch curves; the table uses 5000
        runs[name] = out / "runs" / name
        result = train(config, runs[name], device, resume=True, judge=judge, log=tqdm.write)
        if name in names:
            histories[name.removeprefix("paper-")] = result["history"]

    samples = 1000 if quick else metrics.SAMPLES_PER_SPLIT
    reference = metrics.RealReference(judge, data, device)
    results, published, at_mean = {}, {}, {}
    for name in names:
        stage(f"evaluate {name}")
        family = name.removeprefix("paper-")
        results[family] = metrics.evaluate_model(runs[name], device=device, samples=samples, progress=False,
                                                 judge=judge, data=data, reference=reference)["results"][family]
        model = load_generator(runs[name], device)
        cfg = checkpoint.load_config(runs[name])
        published[family] = {s: metrics.published_code_accuracy(model, judge, make_split(data, cfg["data"], s, device),
                                                                batches=10 if quick else 40)
                             for s in ("valid", "test")}
        # Decoding the latent mean shows what the encoder knows, apart from the sampling noise.
        at_mean[family] = {s: metrics.score_pool(model, judge, captions.pool_for(cfg["data"], s), reference, device, samples=200,
                                                 temperature=0.0)["accuracy"] for s in ("valid", "test")}
    comparison = {}
    for name in beyond:
        stage(f"evaluate {name}")
        mixed = checkpoint.load_config(runs[name])["data"]["family"] == "mixed"
        comparison[name] = metrics.evaluate_model(runs[name], families=list(PAPER_FAMILIES) if mixed else None,
                                                  device=device, samples=samples, progress=False,
                                                  judge=judge, data=data, reference=reference)["results"]
    stage("report")
    figures = out / "figures"
    for name in beyond:  # Figure 4's layout for each new run: its test captions, one per digit
        model, cfg = load_generator(runs[name], device), checkpoint.load_config(runs[name])
        if cfg["data"]["family"] == "mixed":  # the families take turns, digit by digit
            per_family = [figure4_captions(pool=captions.pool_for({**cfg["data"], "family": f}, "test"))
                          for f in PAPER_FAMILIES]
            rows = [per_family[d % len(per_family)][d] for d in range(10)]
        else:
            rows = figure4_captions(pool=captions.pool_for(cfg["data"], "test"))
        caption_grid(model, rows, device, figures / f"samples_{name}.png", f"{name}, test captions")
    report.loss_curves(histories, figures / "fig2_reconstruction.png")
    report.accuracy_curves(histories, figures / "fig3_accuracy.png")
    model = load_generator(runs["paper-arithmetic"], device)
    caption_grid(model, figure4_captions(), device, figures / "fig4_samples.png", "paper VED, unseen test captions")
    arithmetic_test = results["arithmetic"]["test"]
    report.accuracy_by_operations({"paper VED": arithmetic_test["by_operations"]}, figures / "accuracy_by_operations.png")
    report.confusion_matrix(arithmetic_test["confusion"], figures / "confusion_arithmetic_test.png",
                            "paper VED, arithmetic test captions")
    train_pool = captions.caption_pool("arithmetic", "train")
    test_pool = captions.caption_pool("arithmetic", "test")
    texts = [c for d in range(10) for c in train_pool[d]] + [c for d in range(10) for c in test_pool[d]]
    markers = ["o"] * sum(map(len, train_pool.values())) + ["x"] * sum(map(len, test_pool.values()))
    tokens, lengths = vocab.encode(texts)
    with torch.no_grad():
        points = model.caption_features(tokens.to(device), lengths.to(device)).cpu().numpy()
    report.encoding_projection(points, [captions.parse(c) for c in texts], markers,
                               figures / "caption_encodings.png", "paper VED latent means (o train, x test)")

    table = results_table(results, published, at_mean)
    beyond_table = comparison_table(results, comparison)
    minutes = (time.perf_counter() - started) / 60
    train_minutes = sum(h[-1]["seconds"] for h in histories.values() if h) / 60
    text = REPORT.format(table=table, minutes=minutes, train_minutes=train_minutes,
                         findings=findings(results, at_mean), beyond=beyond_table,
                         beyond_figures="\n".join(f"![{n}](figures/samples_{n}.png)" for n in beyond),
                         quick=" (--quick: 2 epochs, fewer samples)" if quick else "",
                         judge_test=judge_info.get("test_accuracy", float("nan")),
                         device=device, floor=arithmetic_test["fjd_floor"],
                         max_epochs=2 if quick else FULL_MAX_EPOCHS)
    checkpoint.atomic_write_text(out / "report.md", text)
    checkpoint.atomic_write_text(out / "results.json", json.dumps(
        {"results": results, "published_code_replay": published, "latent_mean_accuracy": at_mean,
         "beyond_the_paper": comparison,
         "minutes": minutes, "train_minutes": train_minutes}, indent=2))
    if readme:
        update_readme(Path(readme), table, out, None if quick else beyond_table)
    if ship:
        for name in names + [n for n in beyond if n in SHIPPED_BEYOND]:
            ship_model(runs[name], name)
    bar.close()
    return out / "report.md"


def results_table(results: dict, published: dict, at_mean: dict) -> str:
    lines = ["| family | split | paper (published) | paper's code as published, replayed | "
             "**ved: paper VED, scored correctly** | same, latent mean (no sampling) | FJD (held-out real; floor) | diversity |",
             "|---|---|---|---|---|---|---|---|"]
    for family, splits in results.items():
        for split, r in splits.items():
            lines.append(f"| {family} | {split} | {PUBLISHED} | {published[family][split]:.1%} | "
                         f"**{r['accuracy']:.1%}** | {at_mean[family][split]:.1%} | "
                         f"{r['fjd']:.1f} ({r['fjd_real']:.1f}; {r['fjd_floor']:.1f}) | {r['diversity']:.2f} |")
    return "\n".join(lines)


def comparison_table(paper: dict, comparison: dict) -> str:
    """The paper's VED beside the conditional VAE on every family and split this run trained."""
    lines = ["| captions | split | model | accuracy | FJD (held-out real; floor) | diversity |", "|---|---|---|---|---|---|"]
    rows = {(f, "paper VED"): {f: r} for f, r in paper.items()}
    for name, result in comparison.items():
        model, _, variant = name.partition("-")
        rows[(variant, "paper VED" if model == "paper" else "conditional VAE")] = result
    for (variant, model), result in sorted(rows.items()):
        for family, splits in result.items():
            captions_of = variant if len(result) == 1 else f"{variant}: {family}"  # mixed: one row per family
            for split, r in splits.items():
                lines.append(f"| {captions_of} | {split} | {model} | {r['accuracy']:.1%} | "
                             f"{r['fjd']:.1f} ({r['fjd_real']:.1f}; {r['fjd_floor']:.1f}) | {r['diversity']:.2f} |")
    return "\n".join(lines)


def findings(results: dict, at_mean: dict) -> str:
    """The report's summary, written from the numbers of this run."""
    valid = [r["valid"]["accuracy"] for r in results.values()]
    diversity = [r[s]["diversity"] for r in results.values() for s in r]
    arith = results["arithmetic"]["test"]
    by_ops = ", ".join(f"{k} operations {v:.0%}" for k, v in sorted(arith["by_operations"].items()))
    return (f"Scored correctly, the paper's model draws the caption's digit for {min(valid):.0%} to {max(valid):.0%} "
            f"of validation captions across the four families ({min(at_mean[f]['valid'] for f in at_mean):.0%} to "
            f"{max(at_mean[f]['valid'] for f in at_mean):.0%} when the latent mean is decoded instead of a sample: "
            f"the encoder knows the digit, the sampling noise blurs it). Its samples vary "
            f"{min(diversity):.2f} to {max(diversity):.2f} times as much as real digits of the same class. "
            f"On unseen arithmetic captions it reaches {arith['accuracy']:.0%} ({by_ops}).")


def update_readme(readme: Path, table: str, out: Path, beyond_table: str | None = None) -> None:
    """Replace the README's results block with the table and Figure 4 of this run, and its
    beyond-the-paper block with the comparison table, when there is one."""
    text = readme.read_text()
    fig = (out / "figures" / "fig4_samples.png").resolve().relative_to(readme.resolve().parent)
    blocks = {"results": f"{table}\n\n![Figure 4: samples for unseen test captions]({fig})"}
    if beyond_table:
        blocks["beyond"] = beyond_table
    for name, body in blocks.items():
        text, n = re.subn(rf"<!-- {name}:start -->.*?<!-- {name}:end -->",
                          lambda _: f"<!-- {name}:start -->\n{body}\n<!-- {name}:end -->", text, flags=re.S)
        if n != 1:
            raise ValueError(f"{readme} has no '<!-- {name}:start -->...<!-- {name}:end -->' block")
    checkpoint.atomic_write_text(readme, text)


def ship_model(run: Path, name: str) -> None:
    """Copy a run's best weights and config into the package's shipped models."""
    target = WEIGHTS_DIR / name
    target.mkdir(parents=True, exist_ok=True)
    for f in (checkpoint.WEIGHTS, checkpoint.CONFIG):
        checkpoint.atomic_write_bytes(target / f, (Path(run) / f).read_bytes())
    if (Path(run) / "metrics.jsonl").exists():
        shutil.copyfile(Path(run) / "metrics.jsonl", target / "metrics.jsonl")


REPORT = """# ved reproduce{quick}

The paper's VED (fixed binary embeddings, GRU 30, 10x10 Gaussian latent, MLP decoder,
`KL + 2 * MSE`, Adam 1e-3, batch 128, early stop with patience 10, at most {max_epochs} epochs) trained on each caption
family, scored by ved's judge (test accuracy {judge_test:.2%}), every generated image against
its own caption's digit. Device: {device}; this invocation took {minutes:.1f} minutes, of which the
runs' own training time is {train_minutes:.1f} minutes (runs already in OUT/runs are resumed, not redone).

{table}

- **paper (published)**: the classifier accuracy the paper reports for generated images.
- **paper's code as published, replayed**: the same model scored the way the published code
  scores it. Its collate function sorts each batch's images and captions by caption length but
  returns the labels in the old order, so generated images are compared with other images' labels.
  That, not the model, is where the published ~14% comes from.
- **ved**: judge accuracy of images generated from the split's captions (validation: the training
  caption pools on held-out images; test: for arithmetic, unseen captions with 2 to 5 operations).
- **latent mean**: the same model with z set to the mean of its caption's Gaussian (one image
  per caption): what the encoder knows, apart from the sampling noise.
- **FJD**: Frechet distance between judge features of generated and real test images, per digit,
  averaged. In brackets, two real-vs-real scores: held-out real digits (validation images, as many
  per digit as were generated: what a perfect generator scores at this sample count), and the
  floor (two halves of the test set), {floor:.1f} here.
- **diversity**: mean pairwise distance between samples of one caption over that between real
  test images of the same digit (1.0 = as varied as real data).

{findings}

## Figures

Figure 2, reconstruction loss per epoch:

![fig2](figures/fig2_reconstruction.png)

Figure 3, judge accuracy of generated images per epoch:

![fig3](figures/fig3_accuracy.png)

Figure 4, unseen test captions (one row each):

![fig4](figures/fig4_samples.png)

Accuracy by number of operations (arithmetic test), confusion matrix, caption encodings:

![ops](figures/accuracy_by_operations.png) ![confusion](figures/confusion_arithmetic_test.png)

![encodings](figures/caption_encodings.png)

## Beyond the paper

The conditional VAE (`models/cvae.py`, `configs/cvae-*.toml`) beside the paper's VED, with the
same judge and metrics. `mixed`: one conditional VAE trained on all four families at once, scored
on each. `arithmetic-pairs`: 30 one-operation captions (3 per digit) never seen
in training are the test split; `arithmetic-length`: training captions have up to 2 operations,
test captions 3 to 5; logic test captions have 4 to 8 distractors for the conditional VAE (trained
on 1 to 3), 1 to 3 for the paper's runs above. The conditional VAE samples as its configs say
(`temperature`, `sharpness`, `accept`): `cvae-arithmetic` and `cvae-mixed` draw styles at
temperature 1 from a mixture of 40 Gaussians per class, show sigmoid(1.5 x the decoder's logits)
and draw again any image their own critic gives its class less than 0.9; the others draw styles
at temperature 0.9 from one Gaussian per class and show sigmoid(2 x the logits).

{beyond}

Test captions, one row each:

{beyond_figures}
"""
