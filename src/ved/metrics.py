"""Scores for generated digits: judge accuracy, FD_judge and KID_judge, diversity, losses.

FD_judge is the Frechet distance between Gaussians fitted to the judge's features of generated and
real digits, per digit (named for its feature space, as FD_DINOv2 is; it is not the Frechet Joint
Distance of DeVries et al. 2019; ved 0.1 called it FJD, and results carry that key too for one
release). It is biased upwards at a few hundred samples, so each figure comes with what held-out
real digits score at the same count. KID_judge (Binkowski et al. 2018) is the unbiased squared MMD
with a cubic polynomial kernel in the same features: real digits against real digits score 0 up to
its standard deviation over subsets, which is reported beside it.

Every generated image is scored against the digit of the caption it was
generated from, by construction: images and digits are produced together,
row by row, and never re-sorted apart.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from tqdm import tqdm

from . import captions, mnist, strips, vocab
from .batches import CaptionedImages, CaptionPool
from .images import as_uint8
from .train_judge import fit_classifier  # the judge's own training loop: CAS trains one

SAMPLES_PER_SPLIT = 5000  # generated images per family and split (about 500 per digit)
# Bounded work whatever a caller hands in: the pairwise measures grow with n squared (40,000 images
# of one caption would need 12.8 GB for their distances), so each runs on at most this many images,
# the first ones (draws are independent, so the first are as good a sample as any). Studies draw
# far fewer, so their figures are the exact ones.
DIVERSITY_IMAGES = 1000  # images per caption whose mean pairwise distance is measured
PRECISION_RECALL_IMAGES = 2000  # generated images per digit for precision and recall
SCORE_CHUNK = 4096  # images through the judge at once


@torch.no_grad()
def mean_losses(model, dataset: CaptionedImages, batch_size: int = 2000, seed: int = 1) -> dict:
    """Reconstruction and KL over a whole split, with fixed caption and noise draws."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    cpu_state = torch.get_rng_state()
    torch.manual_seed(seed)
    totals, n = {}, 0
    for batch in dataset.batches(batch_size, g, shuffle=False):
        for k, v in model.loss(batch).items():
            totals[k] = totals.get(k, 0.0) + v.item() * len(batch.digits)
        n += len(batch.digits)
    torch.set_rng_state(cpu_state)  # evaluation must not shift the training noise
    return {k: v / n for k, v in totals.items()}


@torch.no_grad()
def judged_accuracy(model, judge, batch, settings: dict | None = None, seed: int = 0) -> float:
    """One image generated per caption row (with these sampling settings), scored against its caption's
    digit."""
    return judged_probe(model, judge, batch, settings, seed, fd=False)["accuracy"]


def judged_probe(model, judge, batch, settings: dict | None = None, seed: int = 0, fd: bool = True) -> dict:
    """judged_accuracy, and with `fd` the Frechet distance in the judge's features between the drawn
    images and the batch's own real ones, all digits together: the training curve's measure of
    quality. On a probe of 2,000 images it reads higher than the study's FD_judge (a Frechet
    distance is biased upward at small sizes, and the digits are pooled), so it compares epochs and
    recipes, not the study's tables."""
    g = torch.Generator().manual_seed(seed)
    images, one = strips.one_cell(model.generate(batch.tokens, batch.lengths, 1, g, **(settings or {}))[:, 0])
    out = {"accuracy": ((judge.predict(images) == batch.digits) & one).float().mean().item()}
    if fd:
        drawn = features(judge, images.float()).cpu().double().numpy()
        real = features(judge, batch.images[:, 0]).cpu().double().numpy()
        out["fd_judge"] = frechet_distance(drawn, real)
    return out


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (rows are samples)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr sqrt(c1 c2) = sum of sqrt eigenvalues of the symmetric sqrt(c1) c2 sqrt(c1)
    w, v = np.linalg.eigh(c1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ c2 @ root1), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * cross)


KID_SUBSETS, KID_SUBSET_SIZE = 10, 1000  # per digit: subsets of at most this many images a side


def kernel_distances(a: np.ndarray, b: np.ndarray, seed: int, subsets: int = KID_SUBSETS) -> np.ndarray:
    """Unbiased squared MMD between two feature sets under k(x, y) = (x.y / d + 1)^3, on `subsets`
    seeded pairs of subsets of min(KID_SUBSET_SIZE, len(a), len(b)) rows each (NaN if under 2)."""
    m = min(KID_SUBSET_SIZE, len(a), len(b))
    if m < 2:
        return np.full(subsets, np.nan)
    rng, d = np.random.default_rng(seed), a.shape[1]
    out = np.empty(subsets)
    for i in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)].astype(np.float64)
        y = b[rng.choice(len(b), m, replace=False)].astype(np.float64)
        kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        out[i] = within - 2 * kxy.mean()
    return out


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of feature sets (rows are samples).
    Each set's manifold is the union of balls around its points, each reaching its k-th nearest
    neighbour in the same set. Precision: the share of generated points inside the real manifold
    (are they like real digits?); recall: the share of real points inside the generated one (do they
    cover real digits' variety?). Unlike pixel diversity, sharpening strokes cannot buy recall."""
    real_t, fake_t = torch.as_tensor(real, dtype=torch.float64), torch.as_tensor(fake, dtype=torch.float64)

    def radii(x):  # distance to the k-th nearest other point
        return torch.cdist(x, x).kthvalue(k + 1, dim=1).values

    if len(real_t) <= k or len(fake_t) <= k:
        return float("nan"), float("nan")
    precision = (torch.cdist(fake_t, real_t) <= radii(real_t)[None]).any(1).double().mean().item()
    recall = (torch.cdist(real_t, fake_t) <= radii(fake_t)[None]).any(1).double().mean().item()
    return precision, recall


def mean_pairwise_distance(x: torch.Tensor) -> float:
    """Mean L2 distance between distinct rows of x (images flattened, pixels in [0, 1])."""
    x = x.reshape(len(x), -1).double()
    if len(x) < 2:
        return float("nan")
    d = torch.cdist(x, x)
    return (d.sum() / (len(x) * (len(x) - 1))).item()


class RealReference:
    """Judge features and within-digit spread of real images (test images for the final report):
    what generated ones are compared to.

    Two real-vs-real FD_judges put a model's in scale. `floor`: the test set's two halves against each
    other (~490 images a side). `held_out_fd`: held-out validation digits, as many as a generator drew,
    against the same test images: what a perfect generator scores at that sample count. The Frechet
    distance of a few hundred samples is biased upwards, so this is the fair bar: 200 held-out
    digits of each class score 10.1, 500 score 6.8, 1,000 score 5.7 (floor 4.9, shipped judge)."""

    def __init__(self, judge, data: mnist.MNIST, device="cpu", seed: int = 0, split: str = "test"):
        """`split`: "test", the final report's reference (test images; validation digits held out),
        or "valid", for choosing settings without the test images: a seeded half of the validation
        images is the reference and the other half the held-out digits."""
        if split not in ("test", "valid"):
            raise ValueError(f"a reference split is 'test' or 'valid', got {split!r}")
        images, labels = data.split(split)
        held_out, held_out_labels = data.split("valid")
        if split == "valid":  # a seeded half; no stride: MNIST's even and odd images differ (FD_judge ~30)
            order = np.random.default_rng(seed).permutation(len(labels))
            mine, held = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2 :])
            images, labels, held_out, held_out_labels = images[mine], labels[mine], images[held], labels[held]
        self.split = split
        self.images = torch.as_tensor(images).float().div(255).to(device)
        self.labels = torch.as_tensor(labels).long()
        self.features = features(judge, self.images).cpu().numpy()
        held_out_features = (
            features(judge, torch.as_tensor(held_out).float().div(255).to(device)).cpu().numpy()
        )
        self.held_out = [held_out_features[held_out_labels == d] for d in range(10)]
        self.seed = seed
        g = np.random.default_rng(seed)
        self.spread, self.floor = [], []
        for d in range(10):
            idx = np.flatnonzero(self.labels.numpy() == d)
            sub = g.choice(idx, size=min(200, len(idx)), replace=False)
            self.spread.append(mean_pairwise_distance(self.images[sub]))
            half = g.permutation(idx)
            self.floor.append(
                frechet_distance(self.features[half[: len(half) // 2]], self.features[half[len(half) // 2 :]])
            )

    def digit_features(self, d: int) -> np.ndarray:
        return self.features[self.labels.numpy() == d]

    def held_out_fd(self, counts: list[int]) -> float:
        """Mean over digits of the FD_judge of `counts[d]` held-out real digits d (at most the ~1,000 there
        are) against the test digits d."""
        g = np.random.default_rng(self.seed)
        return float(
            defined_mean(  # a digit no generated image shows has no bar
                [
                    frechet_distance(g.permutation(self.held_out[d])[: counts[d]], self.digit_features(d))
                    if counts[d] > 1
                    else float("nan")
                    for d in range(10)
                ]
            )
        )


@torch.no_grad()
def features(judge, images: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    return torch.cat([judge.features(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


@torch.no_grad()
def score_pool(
    model,
    judge,
    pool: dict[int, list[str]],
    reference: RealReference,
    device="cpu",
    samples: int = SAMPLES_PER_SPLIT,
    seed: int = 0,
    settings: dict | None = None,
) -> dict:
    """Generate for every caption of a pool (about `samples` images in all, at least 2 per caption)
    and score them with score_images. `settings`: the model's sampling settings (its config's [sample]
    table); None leaves `generate`'s defaults."""
    caption_pool = CaptionPool(pool, device, every_digit=False)
    per_caption = max(2, math.ceil(samples / len(caption_pool)))
    g = torch.Generator().manual_seed(seed)
    images = []
    for lo in range(0, len(caption_pool), 256):
        rows = slice(lo, lo + 256)
        tokens, lengths = caption_pool.tokens[rows], caption_pool.lengths[rows]
        images.append(
            model.generate(tokens[:, : int(lengths.max())], lengths, per_caption, g, **(settings or {})).cpu()
        )  # (C, n, 28, 28), or strips from a numbers model that reads a caption as a number past nine
    widest = max(im.shape[-1] for im in images)
    images = torch.cat([torch.nn.functional.pad(im, (widest - im.shape[-1], 0)) for im in images])
    images, one = strips.one_cell(images)
    return score_images(images, caption_pool.captions, judge, reference, drawn_as_one=one)


def as_floats(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (0 = background) or floats in [0, 1], as floats in [0, 1]."""
    return images.float().div(255) if images.dtype == torch.uint8 else images.float()


@torch.no_grad()
def judge_images(judge, images: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The judge's features and predicted digit of (N, 28, 28) images (uint8 or floats), SCORE_CHUNK
    at a time, so that memory is the features' whatever N is."""
    feats, predicted = [], []
    for lo in range(0, len(images), SCORE_CHUNK):
        f = judge.features(as_floats(images[lo : lo + SCORE_CHUNK]).to(device))
        feats.append(f.cpu())
        predicted.append(judge.head(f).argmax(1).cpu())
    return torch.cat(feats), torch.cat(predicted)


def defined_mean(values, axis=None):
    """np.nanmean, quietly NaN where no value is defined (a digit drawn too few times for a figure):
    a user scoring a handful of images reads NaN in the table, not numpy's warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def at_most(rows: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`rows` as they are if there are at most `count`, else a seeded sample of `count` of them (from
    every caption of a digit, not the first caption's alone)."""
    if len(rows) <= count:
        return rows
    return rows[np.sort(np.random.default_rng(seed).permutation(len(rows))[:count])]


@torch.no_grad()
def score_images(
    images: torch.Tensor, caption_list: list[str], judge, reference: RealReference, drawn_as_one=None
) -> dict:
    """Score images of any generator, (captions, n, 28, 28) uint8 or in [0, 1], row i drawn for
    caption i (`drawn_as_one` (captions, n): False where a numbers model drew a strip with a first
    cell for it, which is wrong whatever its last cell, strips.one_cell): accuracy (overall, by
    operations, by digit), confusion matrix, FD_judge and KID_judge per digit against the reference's
    digits (FD_judge with the held-out-real bar beside it), precision and recall, diversity.
    Memory grows with the images' count only through their features (512 bytes each)."""
    device = reference.images.device
    digits = torch.tensor([captions.parse(c) for c in caption_list])
    per_caption = images.shape[1]
    feats, predicted = judge_images(judge, images.reshape(-1, 28, 28), device)
    predicted = predicted.view(len(images), per_caption)  # row i belongs to caption i
    generated_features = feats.view(len(images), per_caption, -1)
    spread = [mean_pairwise_distance(as_floats(row[:DIVERSITY_IMAGES])) for row in images]
    correct = predicted == digits[:, None]
    correct = (correct if drawn_as_one is None else correct & drawn_as_one.to(correct.device)).float()
    ops = torch.tensor([captions.operation_count(c) for c in caption_list])
    confusion = torch.zeros(10, 10, dtype=torch.long)
    confusion.index_put_(
        (digits[:, None].expand_as(predicted).reshape(-1), predicted.reshape(-1)),
        torch.ones(predicted.numel(), dtype=torch.long),
        accumulate=True,
    )
    per_digit = [
        generated_features[digits == d].reshape(-1, generated_features.shape[-1]).numpy() for d in range(10)
    ]
    fd = [
        frechet_distance(f, reference.digit_features(d)) if len(f) > 1 else float("nan")
        for d, f in enumerate(per_digit)
    ]
    # per subset, the mean over the digits drawn: its spread over subsets is KID's uncertainty
    kid = defined_mean(
        [
            kernel_distances(f, reference.digit_features(d), reference.seed + d)
            for d, f in enumerate(per_digit)
        ],
        axis=0,
    )
    # as many real digits as generated ones, drawn once: the k-NN radii depend on a set's size
    pick = np.random.default_rng(reference.seed)
    prec_rec = [
        precision_recall(
            pick.permutation(reference.digit_features(d))[: min(len(f), PRECISION_RECALL_IMAGES)],
            at_most(f, PRECISION_RECALL_IMAGES, reference.seed),
        )
        for d, f in enumerate(per_digit)
    ]
    diversity = [s / reference.spread[int(d)] for s, d in zip(spread, digits)]
    return {
        "accuracy": correct.mean().item(),
        "by_operations": {int(k): correct[ops == k].mean().item() for k in ops.unique()},
        "by_digit": [correct[digits == d].mean().item() for d in range(10)],
        "confusion": confusion.tolist(),
        **with_old_names(
            {
                "fd_judge": float(defined_mean(fd)),
                "fd_judge_by_digit": fd,
                "fd_judge_floor": float(np.mean(reference.floor)),
                "fd_judge_real": reference.held_out_fd([len(f) for f in per_digit]),
            }
        ),
        "kid_judge": float(np.mean(kid)),
        "kid_judge_std": float(np.std(kid)),
        "diversity": float(defined_mean(diversity)),
        "precision": float(defined_mean([p for p, _ in prec_rec])),  # per digit, averaged
        "recall": float(defined_mean([r for _, r in prec_rec])),
        "reference_split": reference.split,  # the split of the real digits it was scored against
        "captions": len(caption_list),
        "images": int(predicted.numel()),
    }


STRIP_FIGURES = (
    "fd_judge", "fd_judge_real", "fd_judge_floor", "kid_judge", "kid_judge_std",
    "diversity", "precision", "recall",
)  # fmt: skip


def score_strips(images: torch.Tensor, caption_list: list[str], judge, reference: RealReference) -> dict:
    """Score strips of numbers past nine, (captions, n, 28, 28 x cells) uint8 or in [0, 1], row i
    drawn for caption i: `accuracy` the share of strips whose every cell the judge reads as its
    digit, the cells left of the number blank (strips.read); each drawn cell also scored as an image
    of its digit (score_images, each cell captioned by its digit's word): `cell_accuracy`, FD_judge,
    KID_judge and diversity per cell, and `by_caption`."""
    numbers = torch.tensor([captions.number(c) for c in caption_list])
    per_caption = images.shape[1]
    right = strips.read(judge, images.flatten(0, 1), numbers.repeat_interleave(per_caption))
    right = right.view(len(caption_list), per_caption).float()
    cells, digits = strips.drawn_cells(images, numbers)
    per_cell = score_images(cells, [captions.DIGIT_WORDS[d] for d in digits.tolist()], judge, reference)
    return {
        "accuracy": right.mean().item(),
        "cell_accuracy": per_cell["accuracy"],
        **{key: per_cell[key] for key in STRIP_FIGURES},
        "by_caption": [
            {"caption": c, "number": int(n), "accuracy": r.mean().item()}
            for c, n, r in zip(caption_list, numbers, right)
        ],
        "captions": len(caption_list),
        "images": right.numel(),
    }


CAS_EPOCHS = 2  # the classifiers' epochs: enough to tell a useful training set from a poor one
CAS_IMAGES_PER_DIGIT = 5000  # a model's CAS draws MNIST's training split's size: 50,000 images


def classification_accuracy_score(
    images, digits, data: mnist.MNIST, split: str, epochs: int = CAS_EPOCHS
) -> dict:
    """Classification Accuracy Score (Ravuri and Vinyals 2019): a classifier of the judge's
    architecture trained only on these generated images (uint8 or [0, 1], (N, 28, 28)) labelled
    with their captions' digits, tested on the real digits of `split`; beside it, `cas_real`, the same
    classifier trained on as many real training digits of each digit (a seeded draw) and tested alike.
    A generator whose digits are right, varied and real-looking trains one about as good."""
    images = torch.as_tensor(images).reshape(-1, 28, 28)
    images = images if images.dtype == torch.uint8 else as_uint8(images)
    digits = torch.as_tensor(digits).long()
    real_x, real_y = data.split(split)
    train_x, train_y = data.split("train")
    rng, picked = np.random.default_rng(0), []
    for d in range(10):
        pool, wanted = np.flatnonzero(train_y == d), int((digits == d).sum())
        picked.append(rng.choice(pool, wanted, replace=wanted > len(pool)))
    picked = np.concatenate(picked)
    test_x = torch.as_tensor(real_x).float() / 255

    def accuracy(x, y) -> float:
        with torch.enable_grad():  # callers score under no_grad; this trains
            classifier = fit_classifier(x, y, epochs, seed=0)
        classifier.to(memory_format=torch.channels_last)  # the judge's layout: twice as fast to read 10,000
        return (classifier.predict(test_x) == torch.as_tensor(real_y)).float().mean().item()

    return {
        "cas": accuracy(images, digits),
        "cas_real": accuracy(torch.as_tensor(train_x[picked]), torch.as_tensor(train_y[picked])),
        "cas_images": len(digits),
        "cas_epochs": epochs,
        "cas_split": split,
    }


@torch.no_grad()
def training_draws(model, config: dict, per_digit: int = CAS_IMAGES_PER_DIGIT, seed: int = 0):
    """`per_digit` images of each digit a model trained on `config` draws for its training captions
    (100 seeded captions of each digit's pool, or all it has), with their digits: CAS's training set."""
    pool = captions.pool_for(config["data"], "train")
    device = next(model.parameters()).device
    rng, g = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    images, digits = [], []
    for d in (d for d in range(10) if pool[d]):
        chosen = rng.choice(len(pool[d]), min(100, per_digit), replace=len(pool[d]) < min(100, per_digit))
        tokens, lengths = vocab.encode([pool[d][i] for i in chosen])
        n = math.ceil(per_digit / len(chosen))
        drawn = model.generate(tokens.to(device), lengths.to(device), n, g, **config["sample"]).float().cpu()
        drawn = strips.one_cell(drawn)[0]  # a numbers model's strip for a digit: its last cell
        images.append(as_uint8(drawn.reshape(-1, 28, 28)[:per_digit]))
        digits += [d] * per_digit
    return torch.cat(images), torch.tensor(digits)


def with_old_names(scores: dict) -> dict:
    """FD_judge's keys and, for one release, the same figures under their old names (fjd...)."""
    return {**scores, **{key.replace("fd_judge", "fjd"): value for key, value in scores.items()}}


def fd_of(r: dict, part: str = "") -> float | None:
    """FD_judge (or its `_real` or `_floor` bar) of a result of this release or an earlier one (fjd...)."""
    return r.get(f"fd_judge{part}", r.get(f"fjd{part}"))


def fd_cell(r: dict, digits: int = 1) -> str:
    """FD_judge with its held-out-real bar and floor, from a result of this release or an earlier."""
    fd, real, floor = (fd_of(r, part) for part in ("", "_real", "_floor"))
    spread = r.get("fd_judge_interval")  # over training seeds (report.over_seeds)
    shown = f"{fd:.{digits}f}" + (f" [{spread[0]:.{digits}f}, {spread[1]:.{digits}f}]" if spread else "")
    return f"{shown} ({real:.{digits}f}; {floor:.{digits}f})"


def kid_cell(r: dict) -> str:
    """KID_judge with its standard deviation over subsets, or "-" where it was not measured."""
    if "kid_judge" not in r:
        return "-"
    return f"{r['kid_judge']:.2f} ± {r['kid_judge_std']:.2f}"


class References(dict):
    """A RealReference per split, each built when first asked for: "valid" (validation images only)
    for validation rows, "test" (test images) for test rows."""

    def __init__(self, judge, data: mnist.MNIST, device="cpu"):
        super().__init__()
        self.judge, self.data, self.device = judge, data, device

    def __missing__(self, split: str) -> RealReference:
        self[split] = RealReference(self.judge, self.data, self.device, split=split)
        return self[split]


def evaluate_model(
    model,
    config: dict,
    judge,
    families=None,
    splits=None,
    samples: int = SAMPLES_PER_SPLIT,
    progress: bool = True,
    data=None,
    reference=None,
    cas: bool = False,
) -> dict:
    """Every metric for a loaded model and its resolved config (pipeline.load gives both), per family
    and split (default: its own family; valid, test), sampled with the config's [sample] settings;
    with `cas`, the Classification Accuracy Score of its draws for its training captions on each
    split (`cas`: split -> figures).
    Each split is scored against real digits of its own split (`references`): validation rows never
    read a test image, so they can choose settings; only test rows do."""
    device = next(model.parameters()).device
    data = data or mnist.load(progress=progress)
    # `is None`: a References not yet asked for anything is empty, and falsy, but still the shared one
    references = References(judge, data, device) if reference is None else reference
    families = families or [config["data"]["family"]]
    splits = splits or ["valid", "test"]
    results = {}
    jobs = [(f, s) for f in families for s in splits]
    for family, split in tqdm(jobs, desc="evaluate", disable=not progress, leave=False):
        pool = captions.pool_for({**config["data"], "family": family}, split)
        row = score_pool(model, judge, pool, references[split], device, samples, settings=config["sample"])
        if all(pool[d] for d in range(10)):  # losses caption every image; a one-result split cannot
            images, labels = data.split(split)
            losses = mean_losses(model, CaptionedImages(images, labels, CaptionPool(pool, device), device))
            row.update({k: v for k, v in losses.items() if k != "loss"})
            if model.likelihood == "bernoulli" and "kl" in losses:  # a VAE's bound, in nats
                row["elbo_nats"] = -(losses["recon"] + losses["kl"])
        results.setdefault(family, {})[split] = row
    out = {"model": config.get("name", ""), "config": config, "results": results}
    if cas:
        images, digits = training_draws(model, config)
        out["cas"] = {split: classification_accuracy_score(images, digits, data, split) for split in splits}
    return out


def summary_table(result: dict) -> str:
    """A Markdown table of the headline numbers of evaluate_model's result (and its CAS lines)."""
    lines = [
        "| family | split | accuracy | FD_judge (held-out real; floor) | KID_judge | diversity "
        "| precision / recall | recon | KL |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for family, splits in result["results"].items():
        for split, r in splits.items():
            lines.append(
                f"| {family} | {split} | {r['accuracy']:.1%} "
                f"| {fd_cell(r, 2)} | {kid_cell(r)} | "
                f"{r['diversity']:.2f} | {r['precision']:.2f} / {r['recall']:.2f} "
                f"| {_number(r.get('recon'))} | {_number(r.get('kl'))} |"
            )
    for split, c in result.get("cas", {}).items():
        lines.append(
            f"\nCAS ({split}): {c['cas']:.1%}, a classifier trained on {c['cas_images']:,} of these images; "
            f"{c['cas_real']:.1%} trained on as many real training digits"
        )
    return "\n".join(lines)


def _number(value) -> str:
    return "-" if value is None else f"{value:.4f}"  # images scored without their model have no losses


@torch.no_grad()
def published_code_accuracy(
    model,
    judge,
    dataset: CaptionedImages,
    batch_size: int = 128,
    batches: int = 40,
    seed: int = 0,
    settings: dict | None = None,
    aligned: bool = False,
) -> float:
    """The figure the paper's published evaluation reports, replayed on our model.

    Its collate function sorts each batch's images and captions by caption
    length but returns the labels in the old order, so images generated from
    the sorted captions are compared with other images' labels. Kept only to
    show where the published figure comes from; never used as a score.
    `aligned`: the same batches and draws with the labels sorted too, so that
    the two differ by the bug alone.
    """
    g = torch.Generator().manual_seed(seed)
    hits = total = 0
    for i, batch in enumerate(dataset.batches(batch_size, g)):
        if i == batches:
            break
        tokens, lengths = batch.tokens[batch.caption_of], batch.lengths[batch.caption_of]
        order = torch.sort(lengths, descending=True, stable=True).indices
        images = model.generate(tokens[order], lengths[order], 1, g, **(settings or {}))[:, 0]
        digits = batch.digits[order] if aligned else batch.digits  # unsorted labels: the bug
        hits += (judge.predict(images) == digits).sum().item()
        total += len(order)
    return hits / total
