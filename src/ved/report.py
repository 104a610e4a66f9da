"""The study's Markdown: its tables, the summary written from its numbers, the report (from
templates/report.md) and the README's marked blocks."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from .checkpoint import atomic_write_text
from .errors import VedError
from .metrics import fd_cell, fd_of, kid_cell

# What the paper's code logged for generated images: 0.13-0.15 in its arithmetic runs
# (models/indep/VED_mnist-op_*_out.txt), on the captions it trained and validated on. It logged no
# figure we can set beside the other families or beside unseen multi-operation captions.
PUBLISHED = {("arithmetic", "valid"): "13–15% (its code's logs)"}


def published_figure(family: str, split: str) -> str:
    return PUBLISHED.get((family, split), "not reported")


TEMPLATE = Path(__file__).parent / "templates" / "report.md"


def headline(results: dict, seconds: float | None = None) -> dict:
    """A model's headline numbers from its results (family -> split -> metrics): test accuracy, FD_judge
    and diversity averaged over its families, and its training time, for its config's provenance."""
    tests = [splits["test"] for splits in results.values() if "test" in splits]
    out = {
        "families": sorted(results),
        "test_accuracy": round(sum(r["accuracy"] for r in tests) / len(tests), 4),
        "test_fd_judge": round(sum(fd_of(r) for r in tests) / len(tests), 2),
        "test_diversity": round(sum(r["diversity"] for r in tests) / len(tests), 3),
    }
    if seconds is not None:
        out["train_seconds"] = round(seconds)
    return out


# Student's t at 97.5% for n - 1 degrees of freedom (n seeds): the 95% interval of a mean of n seeds
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
PER_SEED = ("accuracy", "fd_judge", "kid_judge", "diversity", "precision", "recall")


def interval(values: list[float], low: float = -math.inf, high: float = math.inf) -> list[float] | None:
    """The 95% interval of the mean of these seeds' figures (Student's t), within [low, high] (an
    accuracy's is within [0, 1]); None for one seed."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    sd = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
    half = T_975.get(n - 1, 2.0) * sd / n**0.5
    return [max(low, mean - half), min(high, mean + half)]


def over_seeds(per_seed: dict[int, dict]) -> dict:
    """Results of one run at several training seeds ({seed: {family: {split: row}}}) as one result of
    the same shape: each number the mean over seeds, the rest (confusion, by digit) the first seed's,
    and beside them `per_seed` (each seed's headline figures, to recompute anything from), `seeds`,
    the 95% intervals of accuracy and FD_judge, and the worst seed by accuracy."""
    seeds = sorted(per_seed)
    out: dict = {}
    for family, splits in per_seed[seeds[0]].items():
        for split, first in splits.items():
            rows = [per_seed[s][family][split] for s in seeds]
            row = dict(first)
            for key, value in first.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    row[key] = sum(r[key] for r in rows) / len(rows)
            row["per_seed"] = [
                {"seed": s, **{k: r[k] for k in PER_SEED if k in r}} for s, r in zip(seeds, rows)
            ]
            row["seeds"] = len(seeds)
            fd = [fd_of(r) for r in rows]
            row["accuracy_interval"] = interval([r["accuracy"] for r in rows], 0.0, 1.0)
            row["fd_judge_interval"] = interval(fd) if None not in fd else None
            worst = min(zip(seeds, rows), key=lambda sr: sr[1]["accuracy"])
            row["worst_seed"] = {"seed": worst[0], "accuracy": worst[1]["accuracy"]}
            out.setdefault(family, {})[split] = row
    return out


def accuracy_cell(r: dict) -> str:
    """Accuracy, and over several seeds its 95% interval and the worst seed's."""
    if not r.get("accuracy_interval"):
        return f"{r['accuracy']:.1%}"
    lo, hi = r["accuracy_interval"]
    return f"{r['accuracy']:.1%} [{lo:.1%}, {hi:.1%}], worst {r['worst_seed']['accuracy']:.1%}"


def render(**values) -> str:
    """The report, its template's {fields} filled in."""
    return TEMPLATE.read_text(encoding="utf-8").format(**values)


def precision_recall(r: dict) -> str:
    """Precision / recall of a result, or "-" for results scored before they were measured."""
    return f"{r['precision']:.2f} / {r['recall']:.2f}" if "precision" in r else "-"


def results_table(results: dict, published: dict, at_mean: dict) -> str:
    lines = [
        "| family | split | paper (published) | paper's code as published, replayed | "
        "**ved: paper VED, scored correctly** | same, latent mean (no sampling) "
        "| FD_judge (held-out real; floor) | KID_judge | diversity | precision / recall |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for family, splits in results.items():
        for split, r in splits.items():
            lines.append(
                f"| {family} | {split} | {published_figure(family, split)} "
                f"| {published[family][split]:.1%} | "
                f"**{accuracy_cell(r)}** | {at_mean[family][split]:.1%} | "
                f"{fd_cell(r)} | {kid_cell(r)} | {r['diversity']:.2f} "
                f"| {precision_recall(r)} |"
            )
    return "\n".join(lines)


def headline_table(paper: dict, published: dict, comparison: dict, default: str = "cvae-mixed") -> str:
    """The README's table, per family on test captions: the paper's model scored as its published
    code scores it (the collate bug replayed), the same model scored correctly, and ved's default
    model (one model for every family) with its precision and recall."""
    ours = comparison.get(default, {})
    lines = [
        "| test captions | paper's model, its code's scoring replayed | scored correctly "
        f"| **ved: {default}** | ved: precision / recall |",
        "|---|---|---|---|---|",
    ]
    for family, splits in paper.items():
        mine = ours.get(family, {}).get("test")
        shown = f"**{accuracy_cell(mine)}** | {precision_recall(mine)}" if mine else "- | -"
        lines.append(
            f"| {family} | {published[family]['test']:.1%} | {accuracy_cell(splits['test'])} | {shown} |"
        )
    return "\n".join(lines)


QUALITY_HEADER = [
    "| captions | split | model | accuracy | FD_judge (held-out real; floor) | KID_judge | diversity "
    "| precision / recall |",
    "|---|---|---|---|---|---|---|---|",
]


def quality_row(captions_of: str, split: str, model: str, r: dict) -> str:
    return (
        f"| {captions_of} | {split} | {model} | {accuracy_cell(r)} | "
        f"{fd_cell(r)} | {kid_cell(r)} | {r['diversity']:.2f} "
        f"| {precision_recall(r)} |"
    )


def comparison_table(paper: dict, comparison: dict[str, tuple]) -> str:
    """The paper's VED (`paper`: family -> its results) beside every run beyond the paper
    (`comparison`: name -> (captions it trained on, its model's label, its [sample], its results)),
    one block of rows per captions and model."""
    lines = list(QUALITY_HEADER)
    rows = {(f, "paper VED"): {f: r} for f, r in paper.items()}
    for variant, label, _, result in comparison.values():
        rows[(variant, label)] = result
    for (variant, model), result in sorted(rows.items()):
        for family, splits in result.items():
            captions_of = variant if len(result) == 1 else f"{variant}: {family}"  # mixed: one row per family
            lines += [quality_row(captions_of, split, model, r) for split, r in splits.items()]
    return "\n".join(lines)


def sampling_table(comparison: dict[str, tuple]) -> str:
    """The sampling settings each run beyond the paper was scored with (as comparison_table takes
    them), one row per model and distinct settings, with the runs that use them."""
    groups: dict[tuple, list[str]] = {}
    for name, (_, label, sample, _) in sorted(comparison.items()):
        groups.setdefault((label, tuple(sample.items())), []).append(name)
    lines = ["| model | sampling settings | runs |", "|---|---|---|"]
    for (label, sample), names in groups.items():
        settings = ", ".join(f"{k} {v}" for k, v in sample) or "none"
        lines.append(f"| {label} | {settings} | {', '.join(f'`{n}`' for n in names)} |")
    return "\n".join(lines)


def peers_table(peers: dict) -> str:
    """ved's model and its peers on every family and split of the data they shared (the default
    model's, then each systematic split's), then what each cost."""
    lines = list(QUALITY_HEADER)
    groups: dict[str, list[str]] = {}
    for name, peer in peers.items():
        groups.setdefault(peer.get("data_of", name), []).append(name)
    for source, names in groups.items():
        results = peers[names[0]]["results"]
        for family in results:
            captions_of = family if len(results) > 1 else source.partition("-")[2]  # mixed: by family
            for split in ("valid", "test"):
                rows = [(n, peers[n]["results"][family][split]) for n in names]
                lines += [quality_row(captions_of, split, n, r) for n, r in rows]
    lines += [
        "",
        "| model | parameters | training seconds (epochs) | seconds to draw 1,000 images |",
        "|---|---|---|---|",
    ]
    for name, peer in peers.items():
        lines.append(
            f"| {name} | {peer['parameters']:,} | {peer['train_seconds']:.0f} ({peer['epochs']}) "
            f"| {peer['sample_seconds_per_1000']:.2f} |"
        )
    return "\n".join(lines)


def peers_section(table: str) -> str:
    return (
        "## The peers\n\nved's model beside the generators people would pick instead, each trained "
        "on the same data for ved's model's training time on this machine, the -6x run for six times it "
        "(docs/peers.md):\n\n"
        f"{table}\n\n![peers](figures/peers.png)\n"
    )


def findings(results: dict, at_mean: dict) -> str:
    """The report's summary, written from the numbers of this run."""
    valid = [r["valid"]["accuracy"] for r in results.values()]
    diversity = [r[s]["diversity"] for r in results.values() for s in r]
    arith = results["arithmetic"]["test"]
    by_ops = ", ".join(f"{k} operations {v:.0%}" for k, v in sorted(arith["by_operations"].items()))
    mean_low = min(at_mean[f]["valid"] for f in at_mean)
    mean_high = max(at_mean[f]["valid"] for f in at_mean)
    return (
        f"Scored correctly, the paper's model draws the caption's digit for {min(valid):.0%} to "
        f"{max(valid):.0%} of validation captions across the four families ({mean_low:.0%} to "
        f"{mean_high:.0%} when the latent mean is decoded instead of a sample: "
        f"the encoder knows the digit, the sampling noise blurs it). Its samples vary "
        f"{min(diversity):.2f} to {max(diversity):.2f} times as much as real digits of the same class. "
        f"On unseen arithmetic captions it reaches {arith['accuracy']:.0%} ({by_ops})."
    )


def update_readme(
    readme: Path,
    table: str,
    out: Path,
    beyond_table: str | None = None,
    headline: str | None = None,
    peers_table: str | None = None,
) -> None:
    """Replace the results block with the table and Figure 4 of this run, the beyond-the-paper block
    with the comparison table, the headline block with the headline table and the peers block with
    the peers' tables and figure, when there are ones.
    Each block is marked `<!-- NAME:start -->...<!-- NAME:end -->` once, in the README or in a page
    of the docs/ folder beside it; nothing outside the marks changes."""
    pages = [readme, *sorted((readme.parent / "docs").glob("*.md"))]
    texts = {page: page.read_text(encoding="utf-8") for page in pages}
    blocks = {"results": (table, "fig4_samples.png", "Figure 4: samples for unseen test captions")}
    if beyond_table:
        blocks["beyond"] = (beyond_table, None, None)
    if headline:
        blocks["headline"] = (headline, None, None)
    if peers_table:
        blocks["peers"] = (peers_table, "peers.png", "Each model on the same test captions, side by side")
    for name, (body, figure, alt) in blocks.items():
        pattern = re.compile(rf"<!-- {name}:start -->.*?<!-- {name}:end -->", re.S)
        found = [page for page, text in texts.items() if pattern.search(text)]
        if len(found) != 1 or len(pattern.findall(texts[found[0]])) != 1:
            raise VedError(
                f"{readme} and docs/*.md beside it need one '<!-- {name}:start -->...<!-- {name}:end -->' "
                f"block; found {sum(len(pattern.findall(t)) for t in texts.values())}"
            )
        page = found[0]
        if figure:
            path = os.path.relpath((out / "figures" / figure).resolve(), page.resolve().parent)
            body = f"{body}\n\n![{alt}]({Path(path).as_posix()})"
        block = f"<!-- {name}:start -->\n{body}\n<!-- {name}:end -->"
        texts[page] = pattern.sub(lambda _, block=block: block, texts[page])
    for page, text in texts.items():
        atomic_write_text(page, text)
