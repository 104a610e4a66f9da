"""`ved reproduce`: MNIST, judge, the paper's VED on every family, the default model, metrics, figures,
report; with --all also the conditional VAE on every family and split, with --peers the peers beside the
default model and beside ved's model on each systematic split (the two combine); with --runs only the
runs it names, their rows added to the study already in OUT.

Runs live in OUT/runs/<name> and resume, so a second call skips finished work. The report and
results.json keep the rows of an earlier invocation into OUT that this one did not make, and say so.
The stages, in order: train (judge and generators), evaluate, draw (figures), write (report,
results, README blocks).
Training sees training and validation data only; the test split opens (holdout.final_report) for
the evaluate and draw stages, after every model is fixed.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from . import about, captions, card, checkpoint, figures, files, holdout, metrics, mnist, report, vocab
from . import config as configs
from .errors import VedError, shown
from .pipeline import DEFAULT_MODEL, WEIGHTS_DIR, Pipeline, device_of, load, load_judge
from .train import make_split, train

PAPER_FAMILIES = tuple(name for name, f in captions.REGISTRY.items() if f.paper_config)


@dataclass(frozen=True)
class Run:
    """One training run of the study: every table and stage reads what it needs from here."""

    name: str  # its folder under OUT/runs and its row's name
    config: str  # the shipped config it trains
    role: str  # "paper": the paper's VED on a family (the study's base); "beyond"; "peer"
    captions: str  # what it was trained on, as its table row names it ("arithmetic-pairs")
    data: dict = field(default_factory=dict)  # its [data] changed from its config's (a second choice)
    measured_against: str | None = None  # a peer: the ved run whose [data] and training seconds it has
    budget: int = 1  # a peer: times that run's training seconds
    default: bool = False  # trained by a plain `ved reproduce` (--all trains every run but the peers)
    quick: bool = False  # trained by `ved reproduce --quick`
    shipped: bool = False  # `--ship` copies it into the package's models


# Every full run trains to its config's own end: the paper's VED until the validation reconstruction
# has not improved for 10 epochs, as the paper did (a cap of 30 epochs cost the sentence and logic
# rows several points; docs/speed.md), the conditional VAEs their configs' epochs, the peers their
# time budgets.
PAPER_RUNS = [
    Run(f.paper_config, f.paper_config, "paper", name, default=True, quick=True, shipped=True)
    for name, f in captions.REGISTRY.items()
    if f.paper_config
]
# Beyond the paper: the conditional VAE on every family, on all of them at once (mixed), and both
# models on the SCAN-style splits (captions.arithmetic_pool says what each holds out).
SPLIT_VARIANTS = (
    "arithmetic-pairs",
    "arithmetic-length",
    "arithmetic-add-primitive",
    "arithmetic-held-out-result",
)
# The systematic splits twice: as their configs ship, and with a second pair set, word or digit, so
# no figure rests on one lucky choice. Neither is a choice the development probes used (pairs of
# seed 1, `six`, 2: experiments/systematic_encoders.py).
SECOND_CHOICES = (
    ("arithmetic-pairs", "seed-2", {"caption_seed": 2}),
    ("arithmetic-add-primitive", "seven", {"add_primitive": "seven"}),
    ("arithmetic-held-out-result", "4", {"hold_out_result": 4}),
)
BEYOND_RUNS = [
    *(
        Run(
            f"cvae-{f}", f"cvae-{f}", "beyond", f,
            default=f"cvae-{f}" == DEFAULT_MODEL,
            quick=f == "arithmetic",  # --quick smoke-tests the section with one short run
            shipped=f"cvae-{f}" in (DEFAULT_MODEL, "cvae-arithmetic"),
        )
        for f in (*PAPER_FAMILIES, "mixed")
    ),
    *(Run(f"{m}-{v}", f"{m}-{v}", "beyond", v) for v in SPLIT_VARIANTS for m in ("cvae", "paper")),
    *(
        Run(f"{m}-{split}-{label}", f"{m}-{split}", "beyond", f"{split}-{label}", data)
        for m in ("cvae", "paper")
        for split, label, data in SECOND_CHOICES
    ),
]  # fmt: skip
# The generators people would pick instead (docs/peers.md). Each trains on the data of one of ved's
# runs for that run's training time on the same machine (the diffusion model on every family also
# for six times it), and on the systematic splits as their configs ship, beside ved's model on each.
PEER_RUNS = [
    Run("peer-cvae-mixed", "peer-cvae-mixed", "peer", "mixed", measured_against=DEFAULT_MODEL, quick=True),
    Run("peer-diffusion-mixed", "peer-diffusion-mixed", "peer", "mixed", measured_against=DEFAULT_MODEL,
        quick=True),
    Run("peer-diffusion-mixed-6x", "peer-diffusion-mixed", "peer", "mixed", measured_against=DEFAULT_MODEL,
        budget=6, quick=True),
    *(
        Run(f"peer-{kind}-{split}", f"peer-{kind}-arithmetic", "peer", split,
            measured_against=f"cvae-{split}")
        for split in ("arithmetic-pairs", "arithmetic-add-primitive", "arithmetic-held-out-result")
        for kind in ("cvae", "diffusion")
    ),
]  # fmt: skip
RUNS = {r.name: r for r in (*PAPER_RUNS, *BEYOND_RUNS, *PEER_RUNS)}
PAPER = [r.name for r in PAPER_RUNS]
BEYOND = [r.name for r in BEYOND_RUNS]
PEERS = [r.name for r in PEER_RUNS]
# --quick trains every run on the first 10,000 training images, in batches small enough that one
# epoch of the conditional VAE still learns its classes (99.4% of validation captions measured)
QUICK_TRAIN_IMAGES, QUICK_BATCH = 10_000, 32
# The peer table scores every model in it, the default model too, on 1,000 images per split: the
# flow draws an image in 40 U-Net passes (~0.1 s on 2 cores), 5,000 a split would take over an hour
# a model. FD_judge and its held-out-real bar are then both at 1,000 (docs/peers.md).
PEER_SAMPLES = 1000


@dataclass
class Study:
    """What the stages share: where and how they run, and what each has found so far."""

    out: Path
    quick: bool
    device: str
    beyond: list[str]
    peers: list[str] = field(default_factory=list)
    paper: list[str] = field(default_factory=lambda: list(PAPER))  # --runs: none, their rows kept
    earlier: dict = field(default_factory=dict)  # OUT/results.json of an earlier invocation of this kind
    runs: dict[str, Path] = field(default_factory=dict)
    judge_dir: Path | None = None
    judge_sha256: str = ""  # of its weights: a study's rows are kept only beside rows of the same judge
    histories: dict[str, list] = field(default_factory=dict)  # the paper's runs' per-epoch metrics
    results: dict = field(default_factory=dict)  # the paper's VED per family, scored correctly
    published: dict = field(default_factory=dict)  # the same, scored as the published code does
    at_mean: dict = field(default_factory=dict)  # the same, decoding the latent mean
    comparison: dict = field(default_factory=dict)  # every run beyond the paper
    peer_results: dict = field(default_factory=dict)  # the default model and the peers: scores and costs
    seconds: dict = field(default_factory=dict)  # wall time of each kind of stage in this invocation
    epochs: dict = field(default_factory=dict)  # run -> (epochs done before this invocation, after it)
    seeds: list[int] = field(default_factory=lambda: [0])  # training seeds of every run (--seeds N: 0..N-1)
    # what each training seed of a run scored, before write() gathers them into one row with intervals:
    # run -> seed -> that run's results (the paper's VED: family -> seed -> its row, and its two replays)
    by_seed: dict = field(default_factory=dict)

    def units(self, names: list[str]) -> list[str]:
        """The run folders of these runs at every seed of the study: seed by seed, run by run."""
        return [unit_name(name, seed) for seed in self.seeds for name in names]


def unit_name(name: str, seed: int) -> str:
    """A run's folder at a training seed: its name at seed 0 (the study's runs before seeds), else
    name-seedN."""
    return name if seed == 0 else f"{name}-seed{seed}"


def run_and_seed(unit: str) -> tuple[str, int]:
    name, _, seed = unit.rpartition("-seed")
    return (name, int(seed)) if name in RUNS and seed.isdigit() else (unit, 0)


def reproduce(
    out: Path,
    quick: bool = False,
    device: str = "cpu",
    train_judge: bool = False,
    readme: Path | None = None,
    ship: bool = False,
    all_runs: bool = False,
    peers: bool = False,
    runs: list[str] | None = None,
    seeds: int = 1,
    executor=None,
) -> Path:
    """Each argument is the flag of its name: `all_runs` (--all-runs, or --all): every run of the
    study but the peers; `peers`: the peers beside the default model and beside ved's model on each
    systematic split (--quick: the default model's only); `runs` (--runs): those runs (and the ved
    runs their peers are measured against), nothing else; `seeds` (--seeds): every run trained at
    training seeds 0..seeds-1, each table giving the mean, a 95% interval and the worst seed;
    `executor` (--cluster): a submitit executor that trains the runs as jobs (train_stage)."""
    started = time.perf_counter()
    named = runs is not None
    earlier = earlier_study(Path(out), quick)
    if runs is None:
        study = Study(Path(out), quick, str(device_of(device)), *chosen_runs(quick, all_runs, peers))
    else:
        paper, beyond, peers = named_runs(runs, earlier, out)
        study = Study(Path(out), quick, str(device_of(device)), beyond, peers, paper=paper)
        study.results = earlier["results"]  # the paper's rows, which the other tables are read beside
        study.published = earlier.get("published_code_replay", {})
        study.at_mean = earlier.get("latent_mean_accuracy", {})
    study.earlier = earlier
    study.seeds = list(range(seeds))
    runs = study.units(study.paper + study.beyond + study.peers)
    bar, stage = stages(study, runs)

    stage("MNIST")
    data = mnist.load(log=tqdm.write)
    stage("judge")
    judge_dir = study.judge_dir = train_or_find_judge(study, train_judge)
    judge = load_judge(judge_dir, study.device)
    study.judge_sha256 = hashlib.sha256((judge_dir / checkpoint.WEIGHTS).read_bytes()).hexdigest()
    if study.earlier.get("judge_sha256", study.judge_sha256) != study.judge_sha256:
        if named:  # its kept rows and the new ones would not be on one scale
            bar.close()  # the error is then the last line, not followed by the bar's
            raise VedError(f"--runs: the study in {out} was scored by another judge; run it again in full")
        study.earlier = {}
    train_stage(study, runs, judge, executor, stage)
    # The models are chosen and trained: from here on the report reads the test split, and only here.
    scored = ", ".join(runs) if len(runs) <= 8 else f"{len(runs)} runs"
    with holdout.final_report(f"the study's evaluate and draw stages ({scored})", study.out / holdout.LEDGER):
        reference = metrics.References(judge, data, study.device)  # each split against its own digits
        for name in runs:
            stage(f"evaluate {name}")
            evaluate_run(study, name, judge, data, reference)
        gather(study)
        stage("draw")
        draw(study)
    stage("write")
    path = write(study, checkpoint.load_config(judge_dir), (time.perf_counter() - started) / 60, readme)
    if ship:
        for name in (n for n in study.paper + study.beyond if RUNS[n].shipped):
            ship_run(study, name)
    bar.close()
    return path


def stages(study: Study, runs: list[str]):
    """The study's progress bar over its stages, and `stage(name)`, which starts the next one and
    adds the time of the one before to its kind's (MNIST, judge, train, evaluate, draw) in the report."""
    names = [
        "MNIST",
        "judge",
        *[f"train {n}" for n in runs],
        *[f"evaluate {n}" for n in runs],
        "draw",
        "write",
    ]
    bar = tqdm(names, desc="reproduce", bar_format="{desc}: {n}/{total} stages [{elapsed}]")
    clock = [time.perf_counter(), "MNIST"]

    def stage(name):
        now = time.perf_counter()
        kind = clock[1].split()[0]
        study.seconds[kind] = study.seconds.get(kind, 0.0) + now - clock[0]
        clock[:] = [now, name]
        bar.set_description(f"reproduce: {name}")
        bar.update(1)

    return bar, stage


def chosen_runs(quick: bool, all_runs: bool, peers: bool) -> tuple[list[str], list[str]]:
    """The runs beyond the paper's four, and the peers, that a study with these flags trains."""
    chosen = (lambda r: r.quick) if quick else (lambda r: True) if all_runs else (lambda r: r.default)
    beyond = [r.name for r in BEYOND_RUNS if chosen(r)]
    return with_measured_against(beyond, [r.name for r in PEER_RUNS if r.quick or not quick] if peers else [])


def with_measured_against(beyond: list[str], peers: list[str]) -> tuple[list[str], list[str]]:
    """Each peer's budget is the training time of the ved run it is measured against: that run too."""
    measured_against = dict.fromkeys(RUNS[p].measured_against for p in peers)
    return [*beyond, *(r for r in measured_against if r not in beyond)], peers


# --runs paper: the paper's four models, the study's base, trained and scored together
PAPER_KEYWORD = "paper"
NAMEABLE = [PAPER_KEYWORD, *BEYOND, *PEERS]  # what --runs may name


def named_runs(names: list[str], earlier: dict, out: Path) -> tuple[list[str], list[str], list[str]]:
    """--runs: the paper's four (if named), the named runs beyond the paper and the peers among them,
    after checking that each is a run of the study and that OUT holds a study of the same kind for
    their rows to join."""
    for name in names:
        if name not in NAMEABLE:
            allowed = ", ".join(NAMEABLE)
            raise VedError(f"--runs {shown(name, 60)}: not a run of the study; allowed: {allowed}")
    if not earlier.get("results"):
        raise VedError(
            f"--runs adds rows to a study, and {out} holds none of this kind; "
            f"run `ved reproduce --out {out}` (with the same --quick) first"
        )
    names = list(dict.fromkeys(names))
    paper = list(PAPER) if PAPER_KEYWORD in names else []
    beyond, peers = with_measured_against([n for n in names if n in BEYOND], [n for n in names if n in PEERS])
    return paper, beyond, peers


MAX_RESULTS_BYTES = 64 << 20  # results.json of the whole study is under 1 MB


def earlier_study(out: Path, quick: bool) -> dict:
    """OUT/results.json of an earlier invocation, if it was a study of the same kind (both --quick
    or neither); otherwise nothing is kept from it. Its judge is checked once the judge is found."""
    try:
        earlier = files.parse_json(files.read_text(out / "results.json", MAX_RESULTS_BYTES), "results.json")
    except VedError:  # missing, too large, nested too deep, not JSON: this invocation's replaces it
        return {}
    tables = ("results", "published_code_replay", "latent_mean_accuracy", "beyond_the_paper", "peers")
    if not isinstance(earlier, dict) or not all(isinstance(earlier.get(k, {}), dict) for k in tables):
        return {}  # not a results.json ved wrote: this invocation's replaces it
    return earlier if earlier.get("quick", False) == quick else {}


def train_or_find_judge(study: Study, train_judge: bool) -> Path:
    judge_dir = WEIGHTS_DIR / "judge"
    if train_judge or not (judge_dir / checkpoint.WEIGHTS).exists():
        judge_dir = study.out / "runs" / "judge"
        train_judge(judge_dir, study.device, epochs=2 if study.quick else 12, log=tqdm.write)
    return judge_dir


def train_stage(study: Study, units: list[str], judge, executor=None, stage=lambda name: None) -> None:
    """Train every run folder: here, one after another, or as jobs of a submitit executor (Slurm, or
    its local executor), all at once, the ved runs before the peers whose time budgets they set.
    Either way each run resumes where its folder stands and trains the same weights."""
    for unit in units:
        study.runs[unit] = study.out / "runs" / unit
    ved_runs = [u for u in units if RUNS[run_and_seed(u)[0]].role != "peer"]
    for wave in (ved_runs, [u for u in units if u not in ved_runs]):
        if executor is None:
            for unit in wave:
                stage(f"train {unit}")
                record_training(study, unit, train_run(study, unit, *run_and_seed(unit), RUNS, judge))
            continue
        jobs = [
            (unit, executor.submit(train_job, study, unit, *run_and_seed(unit), RUNS, study.judge_dir))
            for unit in wave
        ]
        for unit, job in jobs:
            stage(f"train {unit}")
            record_training(study, unit, job.result())


def train_job(study: Study, unit: str, name: str, seed: int, runs: dict, judge_dir: Path) -> dict:
    """train_run as a job: in its own process, with its own judge (the runs travel with it, so that a
    job needs nothing of the process that submitted it)."""
    return train_run(study, unit, name, seed, runs, load_judge(judge_dir, study.device))


def record_training(study: Study, unit: str, outcome: dict) -> None:
    name, seed = run_and_seed(unit)
    study.epochs[unit] = outcome["epochs"]
    if RUNS[name].role == "paper" and seed == 0:  # the figures' curves are seed 0's
        study.histories[RUNS[name].captions] = outcome["history"]


def train_run(study: Study, unit: str, name: str, seed: int, runs: dict, judge) -> dict:
    """A shipped config at one training seed, its epochs capped for the study (--quick: one or two);
    a peer's time instead capped at its multiple of its ved run's training seconds at the same seed in
    this study, on that run's data. Returns its epochs before and after, and its history."""
    run = runs[name]
    source = unit_name(run.measured_against, seed) if run.measured_against else None
    config = {**configs.load(run.config), "name": unit}
    config["data"].update(run.data)
    config["train"]["seed"] += seed
    if source:
        config["data"] = configs.of_folder(study.runs[source])["data"]
    quick_epochs = 1 if name in study.beyond + study.peers else 2
    if study.quick:
        config["train"]["max_epochs"] = quick_epochs
        config["data"]["train_images"] = QUICK_TRAIN_IMAGES
        # the warm-up over as many images as the recipe's: 200 steps of 32 would spend most of the one epoch
        tcfg = config["train"]
        tcfg["warmup_steps"] = tcfg["warmup_steps"] * QUICK_BATCH // tcfg["batch_size"]
        tcfg["batch_size"] = QUICK_BATCH
    elif name in study.peers:
        config["train"]["max_seconds"] = round(run.budget * train_seconds(study.runs[source]))
    # per-epoch curves; the tables use 5,000 samples (a peer's config may ask for fewer: 40 U-Net passes each)
    config["train"]["eval_images"] = min(config["train"]["eval_images"], 500 if study.quick else 1000)
    folder = study.out / "runs" / unit
    before = checkpoint.load_train_state(folder / "last")
    result = train(config, folder, study.device, resume=True, judge=judge, log=tqdm.write)
    return {
        "epochs": (before["state"]["epoch"] if before else 0, result["state"]["epoch"]),
        "history": result["history"],
    }


def train_seconds(run: Path) -> float:
    """A finished run's training time (its last state: after `finish`, if the model has one)."""
    return float(checkpoint.load_train_state(run / "last")["state"]["seconds"])


def timing_captions(data: dict, count: int = 100) -> list[str]:
    """`count` validation captions of every family a model was trained on, to time its drawing.
    A pool of fewer (the pairs split's one-operation captions: 97) gives some of them twice."""
    every = sorted({c for cs in captions.pool_for(data, "valid").values() for c in cs})  # mixed: all four
    if not every:  # a split that leaves no validation caption would loop here for ever
        raise VedError(f"{data['family']}: no validation captions to time drawing on")
    rng, rows = random.Random(0), []
    while len(rows) < count:
        rows += rng.sample(every, min(count - len(rows), len(every)))
    return rows


def costs(study: Study, name: str, pipe: Pipeline) -> dict:
    """What a model costs: parameters, training seconds and epochs, and seconds to draw 1,000
    images (`timing_captions`, 10 each, in one call)."""
    rows = timing_captions(pipe.config["data"])
    model = pipe.model
    pipe.generate(rows[:2], n=2, seed=0)  # warm-up: first-call allocations are not sampling speed
    t0 = time.perf_counter()
    pipe.generate(rows, n=10, seed=0)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": train_seconds(study.runs[name]),
        "epochs": int(checkpoint.load_train_state(study.runs[name] / "last")["state"]["epoch"]),
        "sample_seconds_per_1000": time.perf_counter() - t0,
    }


# What a run's scores depend on besides the run itself: the scoring code
SCORER_SOURCES = [Path(m.__file__) for m in (metrics, captions, mnist, vocab)]


def kept_scores(study: Study, name: str, count: int, score) -> dict:
    """A run's scores on `count` images per split, kept in its folder and reused while the weights,
    config, judge and scoring code are the bytes they were: the peers' diffusion models take ~25
    minutes each to score on 2 cores, and an interrupted study should not score them again."""
    sources = [study.runs[name] / checkpoint.WEIGHTS, study.runs[name] / checkpoint.CONFIG, *SCORER_SOURCES]
    sources.append(study.judge_dir / checkpoint.WEIGHTS)
    digest = hashlib.sha256(str(count).encode())
    for path in sources:
        digest.update(path.read_bytes())
    kept = study.runs[name] / f"scores-{count}.json"
    if kept.exists():
        try:
            saved = files.parse_json(files.read_text(kept, MAX_RESULTS_BYTES), str(kept))
            if saved.get("key") == digest.hexdigest():
                tqdm.write(f"{name}: scores on {count} images per split kept from an earlier invocation")
                return saved["results"]
        except (VedError, AttributeError, KeyError):
            pass  # unreadable: score again and replace it
    results = json.loads(json.dumps(score()))  # the same types whether kept or fresh (int keys: str)
    checkpoint.atomic_write_text(kept, json.dumps({"key": digest.hexdigest(), "results": results}))
    return results


def evaluate_run(study: Study, unit: str, judge, data, reference) -> None:
    """One run at one training seed, scored; its figures wait in study.by_seed for gather()."""
    name, seed = run_and_seed(unit)
    pipe = load(study.runs[unit], device=study.device)
    model, config = pipe.model, pipe.config
    samples = 1000 if study.quick else metrics.SAMPLES_PER_SPLIT
    found = study.by_seed.setdefault(name, {})
    if name in study.beyond + study.peers:
        mixed = config["data"]["family"] == "mixed"

        def scores(count: int) -> dict:
            return kept_scores(
                study,
                unit,
                count,
                lambda: metrics.evaluate_model(
                    model,
                    config,
                    judge,
                    families=list(captions.MIXED) if mixed else None,
                    samples=count,
                    progress=False,
                    data=data,
                    reference=reference,
                )["results"],
            )

        if name in study.beyond:
            found.setdefault("comparison", {})[seed] = scores(samples)
        measured_against = {RUNS[p].measured_against for p in study.peers}
        if name in study.peers or name in measured_against:
            count = min(samples, PEER_SAMPLES)
            same = count == samples and name in study.beyond  # --quick: the scores just made
            results = found["comparison"][seed] if same else scores(count)
            group = RUNS[name].measured_against or name  # the ved run whose data it had
            cost = costs(study, unit, pipe)
            found.setdefault("peers", {})[seed] = {"results": results, "data_of": group, **cost}
        return
    family = RUNS[name].captions
    row = metrics.evaluate_model(
        model, config, judge, samples=samples, progress=False, data=data, reference=reference
    )["results"][family]
    published = {
        s: metrics.published_code_accuracy(
            model,
            judge,
            make_split(data, config["data"], s, study.device),
            batches=10 if study.quick else 40,
            settings=config["sample"],
        )
        for s in ("valid", "test")
    }
    # Decoding the latent mean shows what the encoder knows, apart from the sampling noise.
    settings = {**config["sample"], "temperature": 0.0}
    at_mean = {
        s: metrics.score_pool(
            model,
            judge,
            captions.pool_for(config["data"], s),
            reference[s],
            study.device,
            samples=200,
            settings=settings,
        )["accuracy"]
        for s in ("valid", "test")
    }
    found.setdefault("paper", {})[seed] = {"row": row, "published": published, "at_mean": at_mean}


def gather(study: Study) -> None:
    """Each run's seeds as one row: the mean, a 95% interval and the worst seed (report.over_seeds),
    the per-seed figures kept in it."""
    for name, found in study.by_seed.items():
        if "comparison" in found:
            study.comparison[name] = report.over_seeds(found["comparison"])
        if "peers" in found:
            first = found["peers"][min(found["peers"])]  # costs are seed 0's (or the first seed's)
            results = report.over_seeds({s: p["results"] for s, p in found["peers"].items()})
            study.peer_results[name] = {**first, "results": results}
        if "paper" in found:
            family, seeds = RUNS[name].captions, found["paper"]
            rows = {s: {family: f["row"]} for s, f in seeds.items()}
            study.results[family] = report.over_seeds(rows)[family]
            for table, key in ((study.published, "published"), (study.at_mean, "at_mean")):
                table[family] = {
                    split: sum(f[key][split] for f in seeds.values()) / len(seeds)
                    for split in ("valid", "test")
                }


def figure_rows(config: dict) -> list[str]:
    """Figure 4's layout for a run: its test captions, one per digit; for mixed data the families
    take turns, digit by digit."""
    if config["data"]["family"] != "mixed":
        return figure4_captions(pool=captions.pool_for(config["data"], "test"))
    per_family = [
        figure4_captions(pool=captions.pool_for({**config["data"], "family": f}, "test"))
        for f in captions.MIXED
    ]
    return [per_family[d % len(per_family)][d] for d in range(10)]


def draw(study: Study) -> None:
    folder = study.out / "figures"
    for name in study.beyond:
        rows = figure_rows(configs.of_folder(study.runs[name]))
        caption_grid(study, name, rows, folder / f"samples_{name}.png", f"{name}, test captions")
    beside_default = [p for p in study.peers if RUNS[p].measured_against == DEFAULT_MODEL]
    if beside_default:  # every model of the peer comparison on the same captions, side by side
        names = [DEFAULT_MODEL, *beside_default]
        rows = figure_rows(configs.of_folder(study.runs[DEFAULT_MODEL]))
        panels = {}
        for name in names:
            panels[name] = load(study.runs[name], device=study.device).generate(rows, n=6, seed=0)
        labels = [f"{c}  (= {captions.parse(c)})" for c in rows]
        figures.side_by_side(panels, labels, folder / "peers.png")
    if not study.paper:  # --runs: the paper's figures are the earlier invocation's, as its rows are
        return
    figures.loss_curves(study.histories, folder / "fig2_reconstruction.png")
    figures.accuracy_curves(study.histories, folder / "fig3_accuracy.png")
    caption_grid(
        study,
        "paper-arithmetic",
        figure4_captions(),
        folder / "fig4_samples.png",
        "paper VED, unseen test captions",
    )
    arithmetic_test = study.results["arithmetic"]["test"]
    figures.accuracy_by_operations(
        {"paper VED": arithmetic_test["by_operations"]}, folder / "accuracy_by_operations.png"
    )
    figures.confusion_matrix(
        arithmetic_test["confusion"],
        folder / "confusion_arithmetic_test.png",
        "paper VED, arithmetic test captions",
    )
    train_pool = captions.caption_pool("arithmetic", "train")
    test_pool = captions.caption_pool("arithmetic", "test")
    texts = [c for d in range(10) for c in train_pool[d]] + [c for d in range(10) for c in test_pool[d]]
    markers = ["o"] * sum(map(len, train_pool.values())) + ["x"] * sum(map(len, test_pool.values()))
    tokens, lengths = vocab.encode(texts)
    model = load(study.runs["paper-arithmetic"], device=study.device).model
    with torch.no_grad():
        points = model.caption_features(tokens.to(study.device), lengths.to(study.device)).cpu().numpy()
    figures.encoding_projection(
        points,
        [captions.parse(c) for c in texts],
        markers,
        folder / "caption_encodings.png",
        "paper VED latent means (o train, x test)",
    )


def paper_schedule(study: Study) -> str:
    """How long the paper's runs trained, for the report: where each stopped, if its folder is here."""
    if study.quick:
        return "at most 2 epochs"
    stops = []
    for run in PAPER_RUNS:
        try:
            saved = checkpoint.load_train_state(study.out / "runs" / run.name / "last")
        except checkpoint.ModelError:  # a damaged state: the report says nothing of that run's stop
            continue
        if saved is not None:
            stops.append(f"{run.captions} {saved['state']['epoch']} (best {saved['state']['best_epoch']})")
    patience = configs.load(PAPER[0])["train"]["patience"]
    stopped = f"; epochs trained: {', '.join(stops)}" if stops else ""
    schedule = f"until the validation reconstruction had not improved for {patience} epochs, as the paper did"
    return schedule + stopped


def write(study: Study, judge_info: dict, minutes: float, readme: Path | None) -> Path:
    # rows an earlier invocation into OUT made and this one did not are kept, and named as kept
    earlier_rows = study.earlier.get("beyond_the_paper", {})
    earlier_peers = study.earlier.get("peers", {})
    kept = [
        *(["the paper's four models"] if not study.paper else []),
        *(n for n in {**earlier_rows, **earlier_peers} if n not in study.comparison | study.peer_results),
    ]
    study.comparison = {**earlier_rows, **study.comparison}
    study.peer_results = {**earlier_peers, **study.peer_results}
    table = report.results_table(study.results, study.published, study.at_mean)
    rows = comparison_rows(study)
    beyond_table = report.comparison_table(study.results, rows)
    peers_table = report.peers_table(study.peer_results) if study.peer_results else None
    stage_minutes = ", ".join(f"{kind} {seconds / 60:.1f}" for kind, seconds in study.seconds.items())
    trained = [
        f"{n} ({f'epoch {b}' if b == a + 1 else f'epochs {a + 1}-{b}'})"
        for n, (a, b) in study.epochs.items()
        if b > a
    ]
    resumed = [n for n, (a, b) in study.epochs.items() if b == a]
    runs_line = (
        f"Trained in this invocation: {', '.join(trained) or 'none'}. "
        f"Finished before it, only resumed and scored: {', '.join(resumed) or 'none'}."
    )
    if kept:
        runs_line += f" Kept from an earlier invocation, not made by this one: {', '.join(kept)}."
    text = report.render(
        table=table,
        minutes=minutes,
        stage_minutes=stage_minutes,
        runs_line=runs_line,
        findings=report.findings(study.results, study.at_mean),
        beyond=beyond_table,
        sampling=report.sampling_table(rows),
        beyond_figures="\n".join(  # the kept rows' figures too, drawn by the invocation that made them
            f"![{n}](figures/samples_{n}.png)"
            for n in study.comparison
            if (study.out / "figures" / f"samples_{n}.png").exists()
        ),
        peers=report.peers_section(peers_table) if peers_table else "",
        quick=" (--quick: 2 epochs, fewer samples)" if study.quick else "",
        judge_test=judge_info.get("test_accuracy", float("nan")),
        device=study.device,
        floor=study.results["arithmetic"]["test"]["fd_judge_floor"],
        schedule=paper_schedule(study),
    )
    checkpoint.atomic_write_text(study.out / "report.md", text)
    write_results(study, kept, minutes)
    if readme:
        full = not study.quick and DEFAULT_MODEL in study.comparison  # --quick trains no default model
        headline = (
            report.headline_table(study.results, study.published, study.comparison, DEFAULT_MODEL)
            if full
            else None
        )
        every = not study.quick and set(BEYOND) <= set(study.comparison)  # the beyond block shows them all
        report.update_readme(
            Path(readme),
            table,
            study.out,
            beyond_table if every else None,
            headline,
            peers_table if not study.quick else None,
        )
    return study.out / "report.md"


def write_results(study: Study, kept: list[str], minutes: float) -> None:
    """OUT/results.json: every table's figures, each seed's too, and what made them."""
    results = {
        "quick": study.quick,
        # the code that wrote these rows (kept_from_earlier names rows an earlier code made)
        "ved": about.VERSION,
        "commit": about.commit(),
        "seeds": study.seeds,
        "judge_sha256": study.judge_sha256,
        "kept_from_earlier": kept,
        "results": study.results,
        "published_code_replay": study.published,
        "latent_mean_accuracy": study.at_mean,
        "beyond_the_paper": study.comparison,
        "peers": study.peer_results,
        "minutes": minutes,
        "stage_minutes": {kind: seconds / 60 for kind, seconds in study.seconds.items()},
        "epochs_before_and_after": study.epochs,
    }
    checkpoint.atomic_write_text(study.out / "results.json", json.dumps(results, indent=2))


def run_config(study: Study, name: str) -> dict:
    """A run's config: its folder's, or for a row kept from an earlier invocation whose run is gone,
    the shipped config it trains."""
    folder = study.out / "runs" / name
    return configs.of_folder(folder) if folder.is_dir() else configs.load(RUNS[name].config)


def comparison_rows(study: Study) -> dict[str, tuple[str, str, dict, dict]]:
    """Each run beyond the paper as its table row reads it: (captions, its model class's label,
    its [sample] table, its results)."""
    rows = {}
    for name, results in study.comparison.items():
        config = run_config(study, name)
        label = configs.model_class(config["model"]).label
        rows[name] = (RUNS[name].captions if name in RUNS else name, label, config["sample"], results)
    return rows


def ship_run(study: Study, name: str) -> None:
    """Copy a run into the package's shipped models, its headline metrics added to its provenance."""
    run, target = study.runs[name], WEIGHTS_DIR / name
    results = study.comparison.get(name) or {RUNS[name].captions: study.results[RUNS[name].captions]}
    config = configs.of_folder(run)
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    config.setdefault("provenance", {})["metrics"] = report.headline(results, history[-1]["seconds"])
    checkpoint.save_model(target, checkpoint.load_weights(run), config)
    checkpoint.atomic_write_bytes(target / "metrics.jsonl", (run / "metrics.jsonl").read_bytes())
    checkpoint.atomic_write_text(target / card.CARD, card.model_card(config, name))


def figure4_captions(seed: int = 0, pool: dict[int, list[str]] | None = None) -> list[str]:
    """Ten test captions, one per digit, cycling through the pool's operation counts (2..5 by
    default); a pool of fewer digits (a held-out result's: one) gives each of them more rows."""
    pool = pool or captions.caption_pool("arithmetic", "test", seed)
    rng = random.Random(seed)  # pools are sorted; the first caption of each would all start alike
    counts = sorted({captions.operation_count(c) for p in pool.values() for c in p})
    digits = [d for d in range(10) if pool.get(d)]
    rows: list[str] = []
    for i in range(10):
        digit_pool = pool[digits[i % len(digits)]]
        fresh = [c for c in digit_pool if c not in rows] or digit_pool
        rows.append(
            rng.choice([c for c in fresh if captions.operation_count(c) == counts[i % len(counts)]] or fresh)
        )
    return rows


def caption_grid(study: Study, name: str, rows: list[str], path: Path, title: str) -> None:
    """Eight samples (seed 0) per caption, one row each, the caption and its digit at the left."""
    images = load(study.runs[name], device=study.device).generate(rows, n=8, seed=0)
    figures.sample_grid(images, [f"{c}  (= {captions.parse(c)})" for c in rows], path, title=title)
