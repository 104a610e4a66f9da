"""`ved ...` subcommands. Thin: parse arguments, call the modules, turn known errors into one line.

Exit status: 0 done; 2 input ved refuses (a caption, an option, a config, a model or run folder:
a VedError), with nothing written; 1 the system failed us (a file that cannot be written, MNIST out
of reach), or a bug in ved (any other error: its traceback and a request to report it); 130
interrupted. VED_DEBUG=1 shows the traceback of a refusal too.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

import numpy as np

from . import captions, holdout, mnist
from .about import DEFAULT_MODEL, VERSION, WEIGHTS_DIR, check_provenance, shipped_models
from .errors import VedError, one_line, parsed_number, shown
from .files import MAX_CONFIG_BYTES, parse_json, read_text
from .images import DEFAULT_N, check_image_count

PNG_GRID = (500, 100)  # most captions and images a caption in a .png grid: matplotlib draws it whole


class CollapsedRun(VedError):
    """A run that trained to its end with a collapsed model (train.collapse_of)."""


class UsageError(VedError):
    """Bad input the user can fix; printed as one line."""


class Parser(argparse.ArgumentParser):
    """argparse, with its usage errors in one line (the usage block is in --help)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {shown(message, 300)} (see {self.prog} --help)\n")


def whole(low: int, high: int):
    """An argparse type: a whole number in [low, high], refused with both bounds named."""

    def parse(text: str) -> int:
        value = parsed_number(text.strip())
        if not isinstance(value, int):
            raise argparse.ArgumentTypeError(f"'{shown(text, 40)}' is not a whole number")
        if not low <= value <= high:
            top = f"{high:,}" if high >= 10**6 else str(high)
            raise argparse.ArgumentTypeError(f"{shown(text, 40)} is out of range; allowed: {low} to {top}")
        return value

    return parse


SEED = whole(0, 2**63 - 1)


def host_name(text: str) -> str:
    """An argparse type: a name a Host header may carry (letters, digits, dots, hyphens; an IPv6
    address in brackets or not)."""
    name = text.strip("[]")
    if not name or len(name) > 253 or not all(ch.isascii() and (ch.isalnum() or ch in ".-:") for ch in name):
        raise argparse.ArgumentTypeError(
            f"'{shown(text, 60)}' is not a host name; allowed: letters, digits, "
            "dots and hyphens, e.g. ved.example.org, or an IP address"
        )
    return name


def frame_origin(text: str) -> str:
    """An argparse type: an origin as CSP's frame-ancestors takes it, scheme://host[:port], the
    host's first label may be *."""
    import re

    if not re.fullmatch(r"https?://(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?", text):
        raise argparse.ArgumentTypeError(
            f"'{shown(text, 60)}' is not an origin; allowed: https://host or https://*.host, with a port"
        )
    return text


def writable_file(path: Path, option: str) -> Path:
    """Check, before any work, that `path` can be written as a file: not a folder, no file where a
    folder must be, and a folder that takes new files. Nothing is created."""
    if path.is_dir():
        raise UsageError(f"{option} '{path}' is a folder; give a file name")
    _writable_folder(path.parent, option, path)
    return path


def writable_folder(path: Path, option: str) -> Path:
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} '{path}' is a file; give a folder")
    _writable_folder(path, option, path)
    return path


def _writable_folder(folder: Path, option: str, path: Path) -> None:
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} '{path}': '{existing}' is a file, not a folder")
    try:  # the one honest test of writing (root ignores permission bits, not read-only mounts)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise UsageError(f"{option} '{path}': cannot write in '{existing}' ({e.strerror})") from None


def add_precision(p, default: str, why: str):
    from .precision import CHOICES

    p.add_argument(
        "--precision",
        choices=CHOICES,
        default=default,
        help=f"what the images are drawn in; auto: bf16 on a CPU that computes it fast (about twice "
        f"the images a second), fp32 elsewhere; {why} (default: {default})",
    )


def add_device(p):
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")


def add_quiet(p):
    p.add_argument("--quiet", action="store_true", help="no progress bars (default: off)")


def add_model(p):
    p.add_argument(
        "--model", help=f"shipped model name or run folder (default: {DEFAULT_MODEL}, the best shipped model)"
    )


def parser() -> argparse.ArgumentParser:
    """`ved`'s parser: each command's options are registered beside its handler (`options_NAME`),
    as diffusers-cli's commands do."""
    p = Parser(prog="ved", description="Captions to MNIST digits with variational encoder-decoders.")
    p.add_argument("--version", action="version", version=f"ved {VERSION}", help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    registers = (options_data, options_captions, options_judge, options_train, options_sample,
                 options_models, options_evaluate, options_reproduce, options_serve)  # fmt: skip
    parsers = {register: register(sub) for register in registers}
    p.sample_parser = parsers[options_sample]  # its options, told apart from a model's settings
    return p


def options_data(sub) -> argparse.ArgumentParser:
    """`ved data`: its options, beside its handler."""
    s = sub.add_parser("data", help="get, verify and cache MNIST; print where it is")
    s.add_argument("--data-dir", help="folder of MNIST IDX files to use first (default: $VED_DATA_DIR)")
    add_quiet(s)
    s.set_defaults(run=cmd_data)
    return s


def cmd_data(args):
    data = mnist.load(args.data_dir, progress=not args.quiet, log=lambda m: print(m, file=sys.stderr))
    print(f"MNIST verified (sha256 {data.content_hash()[:16]}...) at {mnist.cache_path()}")
    for split in captions.SPLITS:
        print(f"  {split}: {data.count(split)} images")


def options_captions(sub) -> argparse.ArgumentParser:
    """`ved captions list|parse`: its options, beside its handler."""
    s = sub.add_parser("captions", help="list a family's captions or parse captions")
    csub = s.add_subparsers(dest="captions_command", required=True, metavar="ACTION")
    c = csub.add_parser("list", help="print caption<TAB>digit for a family and split")
    c.add_argument(
        "--family",
        choices=captions.FAMILIES,
        default="arithmetic",
        help="caption family to list (default: arithmetic)",
    )
    c.add_argument(
        "--split", choices=captions.SPLITS, default="train", help="which split's captions (default: train)"
    )
    c.add_argument("-n", type=whole(0, 10**9), default=None, help="at most N lines (default: all)")
    c.add_argument("--seed", type=whole(0, 2**31 - 1), default=0, help="caption seed (default: 0)")
    c.add_argument(
        "--out", help="write the captions here, one a line, in the same stable order (default: print them)"
    )
    numbers = "numbers past nine too, as models trained with [data] numbers draw them (default: digits only)"
    c.add_argument("--numbers", action="store_true", help=f"arithmetic captions of {numbers}")
    c.set_defaults(run=cmd_captions_list)
    c = csub.add_parser("parse", help="print the digit each caption means")
    c.add_argument("caption", nargs="+", help="one caption per argument (quote it)")
    c.add_argument("--numbers", action="store_true", help=f"read {numbers}")
    c.set_defaults(run=cmd_captions_parse)
    return s


def cmd_captions_list(args):
    # a listing for the user; no choice of ved's is made from it
    if args.numbers and args.family != "arithmetic":
        raise UsageError(f"--numbers lists arithmetic captions; got --family {args.family}")
    with holdout.final_report(f"{args.family} captions of the {args.split} split, listed"):
        pool = captions.caption_pool(args.family, args.split, args.seed)
        if args.numbers:
            pool = {**pool, **captions.number_pool(args.split, args.seed)}
    if args.out:  # one caption a line, for --captions-file of ved sample and ved evaluate
        from .checkpoint import atomic_write_text

        chosen = [c for d in sorted(pool) for c in pool[d]][: args.n]
        atomic_write_text(writable_file(Path(args.out), "--out"), "".join(c + "\n" for c in chosen))
        print(f"{len(chosen)} captions -> {args.out}")
        return
    lines = [f"{c}\t{d}" for d in sorted(pool) for c in pool[d]]
    sys.stdout.write("".join(line + "\n" for line in lines[: args.n]))


def cmd_captions_parse(args):
    # all or nothing: a bad one stops first
    digits = [captions.check_caption(c, None, numbers=args.numbers) for c in args.caption]
    print("\n".join(map(str, digits)))


def options_judge(sub) -> argparse.ArgumentParser:
    """`ved judge train`: its options, beside its handler."""
    s = sub.add_parser("judge", help="the evaluator CNN")
    jsub = s.add_subparsers(dest="judge_command", required=True, metavar="ACTION")
    j = jsub.add_parser("train", help="train the judge on the 50k training split")
    j.add_argument("--out", default="runs/judge", help="folder for the judge's weights (default: runs/judge)")
    j.add_argument(
        "--epochs",
        type=whole(1, 1000),
        default=12,
        help="training epochs; the best on validation is kept (default: 12)",
    )
    j.add_argument("--seed", type=SEED, default=0, help="seed of initialisation and shuffling (default: 0)")
    add_device(j)
    add_quiet(j)
    j.set_defaults(run=cmd_judge_train)
    return s


def cmd_judge_train(args):
    from .pipeline import device_of
    from .train_judge import train_judge

    writable_folder(Path(args.out), "--out")
    result = train_judge(
        args.out, str(device_of(args.device)), epochs=args.epochs, seed=args.seed, progress=not args.quiet
    )
    print(f"judge: test accuracy {result['test_accuracy']:.4f} -> {args.out}")


def options_train(sub) -> argparse.ArgumentParser:
    """`ved train`: its options, beside its handler."""
    s = sub.add_parser("train", help="train a generator from a config file")
    s.add_argument(
        "--config",
        required=True,
        help="a TOML file, or the name of a shipped config such as cvae-arithmetic (see src/ved/configs/)",
    )
    s.add_argument("--out", help="run folder (default: runs/<config name>)")
    add_device(s)
    s.add_argument("--seed", type=SEED, help="override [train] seed (default: the config's)")
    s.add_argument(
        "--epochs", type=whole(1, 100_000), help="override [train] max_epochs (default: the config's)"
    )
    s.add_argument("--resume", action="store_true", help="continue the run in --out (default: off)")
    s.add_argument(
        "--overwrite",
        action="store_true",
        help="train afresh in an --out that holds a run, removing its run files (default: off: refused)",
    )
    add_quiet(s)
    s.set_defaults(run=cmd_train)
    return s


def cmd_train(args):
    from . import config as configs
    from .pipeline import device_of, load_judge
    from .train import train

    if args.resume and args.overwrite:
        raise UsageError("--resume continues the run in --out and --overwrite starts it afresh: give one")
    config = configs.load(args.config)
    if args.seed is not None:
        config["train"]["seed"] = args.seed
    if args.epochs is not None:
        config["train"]["max_epochs"] = args.epochs
    if args.out is None:
        configs.check_run_name(config["name"])  # it names the folder: a path would write elsewhere
    out = writable_folder(Path(args.out or Path("runs") / config["name"]), "--out")
    device = str(device_of(args.device))
    from . import distributed

    dist = distributed.setup(device)
    device = dist.device if dist else device  # under torchrun each rank takes its own GPU
    try:
        result = train(
            config,
            out,
            device=device,
            resume=args.resume,
            judge=load_judge(device=device),
            progress=not args.quiet,
            dist=dist,
            overwrite=args.overwrite,
        )
    finally:
        distributed.teardown(dist)
    if dist is None or dist.rank == 0:
        s = result["state"]
        print(
            f"trained {s['epoch']} epochs in {s['seconds']:.1f}s; best epoch {s['best_epoch']} "
            f"(valid {config['train']['early_stop_on']} {s['best_valid']:.4f}) -> {out}"
        )
        if result["collapsed"]:  # the weights are kept, for a look; nobody ships them unknowingly
            raise CollapsedRun(f"{out}: {result['collapsed']}; its weights are kept there to inspect")


MAX_CAPTIONS_FILE = 10 << 20


def options_sample(sub) -> argparse.ArgumentParser:
    """`ved sample`: its options, beside its handler."""
    s = sub.add_parser(
        "sample",
        help="draw digits for captions into a .npy array or a .png grid",
        epilog="Any sampling setting of the model is an option too, e.g. --temperature 0.8 --accept 0.95 "
        "for the default model (its [sample] table); each is checked against the model's bounds "
        "(docs/robustness.md).",
    )
    s.add_argument("caption", nargs="*", help="captions, one per argument (quote each)")
    add_model(s)
    s.add_argument(
        "-n", type=whole(1, 10_000), default=DEFAULT_N, help=f"samples per caption (default: {DEFAULT_N})"
    )
    s.add_argument(
        "--seed",
        type=SEED,
        default=None,
        help="seed of the random draws; the same seed draws the same images here, in Python and over "
        "HTTP (default: a fresh seed, printed)",
    )
    s.add_argument("--captions-file", help="a UTF-8 text file with one caption per line")
    s.add_argument(
        "--same-style",
        action="store_true",
        help="N rows, each one handwriting drawn as each of the ten digits, or as each caption given "
        "(a numbers model writes every number in it)",
    )
    add_quiet(s)
    s.add_argument(
        "--no-strict",
        action="store_true",
        help="also draw captions of known words that the grammar gives no value, or of a family the "
        "model was not trained on; a warning says so (default: off, they are refused)",
    )
    s.add_argument(
        "--out",
        default="samples.png",
        help=".npy (uint8, captions x n x 28 x 28; x 56 for a numbers model's strips) or .png grid "
        "(default: samples.png)",
    )
    add_device(s)
    add_precision(s, "fp32", "fp32 draws what ved.load() draws in Python")
    s.set_defaults(run=cmd_sample)
    return s


def read_captions(args) -> list[str]:
    lines = list(args.caption)
    if args.captions_file:
        where = f"--captions-file '{shown(args.captions_file, 200)}'"
        if Path(args.captions_file).is_dir():
            raise UsageError(f"{where} is a folder; give a text file, one caption a line")
        text = read_text(args.captions_file, MAX_CAPTIONS_FILE, where, UsageError)  # pipes and devices too
        lines += [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise UsageError("no captions: give CAPTION arguments or --captions-file FILE")
    return lines


def cmd_sample(args):
    from .pipeline import StrictRefusal, load

    given = bool(args.caption or args.captions_file)
    caption_list = read_captions(args) if given or not args.same_style else []
    out = Path(args.out)
    if out.suffix not in (".npy", ".png"):
        raise UsageError(f"--out must end in .npy or .png, got '{shown(out.name, 60)}'")
    rows = args.n if args.same_style else len(caption_list)
    columns = (len(caption_list) or 10) if args.same_style else args.n
    check_image_count(rows, columns, UsageError)
    if out.suffix == ".png" and (rows > PNG_GRID[0] or columns > PNG_GRID[1]):
        raise UsageError(
            f"a .png grid holds at most {PNG_GRID[0]} rows of {PNG_GRID[1]} images, asked {rows} of "
            f"{columns}; write a .npy array for more"
        )
    writable_file(out, "--out")
    pipe = load(args.model, device=args.device, precision=args.precision)
    settings = pipe.resolve_settings(args.settings)  # every one checked before any work
    strict = not args.no_strict
    if args.same_style:
        try:
            images = pipe.same_style(args.n, generator=args.seed, prompt=caption_list or None, **settings)
        except StrictRefusal as e:
            raise StrictRefusal(f"{e}; --same-style draws captions in the model's grammar only") from None
        labels = [f"style {i + 1}" for i in range(args.n)]
    else:
        try:  # every caption, before any work: the first refused one stops it all
            caption_list, loose = pipe.check(caption_list, strict)
        except StrictRefusal as e:
            raise StrictRefusal(f"{e}; --no-strict draws it anyway") from None
        if loose:
            print(
                f"ved: warning: drawing {len(loose)} caption(s) outside the model's grammar (--no-strict), "
                f"e.g. '{shown(loose[0][0], 60)}'; their digits mean nothing",
                file=sys.stderr,
            )
        with warnings.catch_warnings():  # said above, in the CLI's own words
            warnings.simplefilter("ignore")
            images = pipe(
                caption_list,
                args.n,
                generator=args.seed,
                output_type="mnist",
                return_dict=False,
                strict=strict,
                progress=not args.quiet,
                **settings,
            )[0]
        labels = [shown(c, 60) for c in caption_list]
    from .checkpoint import atomic_write_bytes

    if out.suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, images)
        atomic_write_bytes(out, buf.getvalue())
    else:
        from .figures import sample_grid

        sample_grid(images, labels, out)
    print(f"wrote {images.shape[0]}x{images.shape[1]} samples to {out} (seed {pipe.last_seed})")


def options_models(sub) -> argparse.ArgumentParser:
    """`ved models`: its options, beside its handler."""
    s = sub.add_parser("models", help="list the shipped models (and --model folders) with their metrics")
    s.add_argument(
        "--model",
        action="append",
        help="also a run folder or another model, repeatable (default: shipped only)",
    )
    s.set_defaults(run=cmd_models)
    return s


def cmd_models(args):
    given = []
    if args.model:  # listed only if it loads and draws: a folder from anywhere is checked whole
        from .pipeline import load, resolve_model

        given = [resolve_model(m) for m in args.model]
        for folder in given:
            load(folder)
    shipped = [WEIGHTS_DIR / name for name in shipped_models()]
    rows = [("model", "families", "test accuracy", "FD_judge", "diversity", "train s", "ved", "trained")]
    for folder in shipped + given:  # read as JSON, without torch: listing draws nothing
        path = folder / "config.json"
        config = parse_json(read_text(path, MAX_CONFIG_BYTES, str(path), UsageError), str(path), UsageError)
        about = check_provenance(config.get("provenance", {}), captions.FAMILIES, UsageError)
        m = about.get("metrics", {})
        name = folder.name if folder.parent == WEIGHTS_DIR else str(folder)
        name += " (default)" if folder == WEIGHTS_DIR / DEFAULT_MODEL else ""
        rows.append((
            name,
            ",".join(m.get("families", [str(config.get("data", {}).get("family", "-"))])),
            f"{m['test_accuracy']:.1%}" if "test_accuracy" in m else "-",
            f"{m['test_fd_judge']:.1f}" if "test_fd_judge" in m else "-",
            f"{m['test_diversity']:.2f}" if "test_diversity" in m else "-",
            str(m.get("train_seconds", "-")),
            str(about.get("ved", "-")),
            str(about.get("trained", "-"))[:10],
        ))  # fmt: skip
    rows = [
        tuple(shown(cell, 80) for cell in row) for row in rows
    ]  # a folder's text, escaped for the terminal
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def options_evaluate(sub) -> argparse.ArgumentParser:
    """`ved evaluate`: its options, beside its handler."""
    s = sub.add_parser(
        "evaluate",
        help="judge accuracy, FD_judge, KID_judge, diversity and losses of a model, or of any generator's "
        "images",
        description="Two modes: score a model (--model, --family, --split), or score images any "
        "generator drew (--samples X.npy --captions-file FILE, --split valid|test).",
    )
    model_mode = s.add_argument_group("scoring a model (the default mode)")
    add_model(model_mode)
    model_mode.add_argument(
        "--family",
        action="append",
        choices=captions.FAMILIES,
        help="repeatable (default: the model's training family)",
    )
    s.add_argument(
        "--split",
        action="append",
        choices=captions.SPLITS,
        help="repeatable (default: valid, test; with --samples one of test, valid: default test)",
    )
    samples_mode = s.add_argument_group("scoring images instead of a model")
    samples_mode.add_argument(
        "--samples",
        metavar="X.npy",
        help="score these images of any generator instead of a model: uint8 (captions, n, 28, 28), "
        "0 = background, row i drawn for line i of --captions-file",
    )
    samples_mode.add_argument("--captions-file", metavar="FILE", help="with --samples: one caption a line")
    s.add_argument(
        "--cas",
        action="store_true",
        help="also the Classification Accuracy Score: a classifier trained on the images (a model's: "
        "50,000 drawn for its training captions) tested on the split's real digits, beside one trained "
        "on as many real digits; trains two classifiers a split, minutes on a CPU (default: off)",
    )
    s.add_argument("--json", help="also write the full results here")
    add_device(s)
    add_quiet(s)
    s.set_defaults(run=cmd_evaluate)
    return s


def cmd_evaluate(args):
    from .metrics import evaluate_model
    from .pipeline import load, load_judge

    if args.json:
        writable_file(Path(args.json), "--json")
    if args.samples:
        return evaluate_samples(args)
    if args.captions_file:
        raise UsageError("--captions-file goes with --samples: the captions the images were drawn for")
    pipe = load(args.model, device=args.device)
    # scores a finished model; its test rows read the test split
    with holdout.final_report(f"model {shown(str(args.model or DEFAULT_MODEL), 80)} scored by ved evaluate"):
        result = evaluate_model(
            pipe.model,
            pipe.config,
            load_judge(device=pipe.device),
            families=args.family,
            splits=args.split,
            progress=not args.quiet,
            cas=args.cas,
        )
    write_json(args.json, result)
    from .metrics import summary_table

    print(summary_table(result))


def no_nan(value):
    """NaN (a figure of a digit no image was drawn for) as null: JSON has no NaN."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: no_nan(v) for k, v in value.items()}
    return [no_nan(v) for v in value] if isinstance(value, list) else value


def write_json(path: str | None, result: dict) -> None:
    """ved evaluate's --json: the whole result, written atomically, when a path was given."""
    if path:
        from .checkpoint import atomic_write_text

        atomic_write_text(Path(path), json.dumps(no_nan(result), indent=2))


def evaluate_samples(args):
    """ved evaluate --samples X.npy --captions-file F: any generator's images, scored by the judge."""
    from . import bench
    from .metrics import summary_table

    if args.model or args.family:
        raise UsageError("--samples scores the images given; leave out --model and --family")
    if not args.captions_file:
        raise UsageError("--samples needs --captions-file FILE: the caption of each row, one a line")
    splits = args.split or ["test"]
    if len(splits) > 1 or splits[0] == "train":
        raise UsageError("--samples is scored against one split's real digits: --split test or --split valid")
    images = bench.read_samples(Path(args.samples))  # header checked first; never unpickled
    args.caption = []
    result = bench.score(images, read_captions(args), split=splits[0], device=args.device, cas=args.cas)
    write_json(args.json, result)
    table = {family: {splits[0]: row} for family, row in result["by_family"].items()}
    if len(table) > 1:
        table["all"] = {splits[0]: result}
    print(summary_table({"results": table, **({"cas": {splits[0]: result}} if args.cas else {})}))


def options_reproduce(sub) -> argparse.ArgumentParser:
    """`ved reproduce`: its options, beside its handler."""
    s = sub.add_parser("reproduce", help="the whole study in one command: models, metrics, figures, report")
    s.add_argument(
        "--out",
        default="out/reproduce",
        help="folder for runs, figures and report; its finished runs are resumed (default: out/reproduce)",
    )
    s.add_argument("--quick", action="store_true", help="small, fast version for smoke tests (default: off)")
    s.add_argument(
        "--all-runs",
        "--all",
        action="store_true",
        help="also the conditional VAE on every family and split (default: the paper's four models and "
        "the default model)",
    )
    s.add_argument(
        "--peers",
        action="store_true",
        help="also the peers (textbook CVAE, diffusion) beside the default model and beside ved's model "
        "on each systematic split (default: off)",
    )
    s.add_argument(
        "--runs",
        nargs="+",
        metavar="NAME",
        help="train and score only these runs (and the ved runs their peers are measured against); their "
        "rows join the study already in --out, whose other rows are kept (names: 'paper' for the paper's "
        "four models, and the runs --all and --peers train; default: off)",
    )
    s.add_argument(
        "--seeds",
        type=whole(1, 20),
        default=1,
        metavar="N",
        help="train every run at training seeds 0..N-1; the tables give each run's mean, 95%% interval "
        "and worst seed, results.json each seed's figures (default: 1)",
    )
    s.add_argument(
        "--cluster",
        choices=("slurm", "local"),
        help="train the runs as submitit jobs, all at once: on Slurm (run from a login node, --out on a "
        "file system the nodes share), or as local processes; evaluation stays here (default: one "
        "after another in this process; needs pip install 'ved[cluster]')",
    )
    s.add_argument("--slurm-partition", metavar="NAME", help="with --cluster slurm: the partition")
    s.add_argument(
        "--job-minutes", type=whole(1, 100_000), default=240, help="each job's time limit (default: 240)"
    )
    s.add_argument("--job-cpus", type=whole(1, 1024), default=2, help="CPUs for each job (default: 2)")
    s.add_argument(
        "--train-judge", action="store_true", help="retrain the judge instead of using the shipped one"
    )
    s.add_argument(
        "--readme",
        help="also rewrite the marked result blocks of this README and the docs/ pages beside it "
        "(default: off)",
    )
    s.add_argument(
        "--ship",
        action="store_true",
        help="copy the trained models into the package's shipped weights (default: off)",
    )
    add_device(s)
    s.set_defaults(run=cmd_reproduce)
    return s


def cmd_reproduce(args):
    from .reproduce import reproduce

    if args.runs and (args.all_runs or args.peers):
        raise UsageError("--runs names the runs to train; it does not combine with --all or --peers")
    path = reproduce(
        Path(args.out),
        quick=args.quick,
        device=args.device,
        train_judge=args.train_judge,
        readme=args.readme,
        ship=args.ship,
        all_runs=args.all_runs,
        peers=args.peers,
        runs=args.runs,
        seeds=args.seeds,
        executor=cluster_executor(args),
    )
    print(f"report: {path}")


def cluster_executor(args):
    """The submitit executor --cluster asks for, or None: the runs train here, one after another."""
    if args.cluster is None:
        if args.slurm_partition:
            raise UsageError("--slurm-partition goes with --cluster slurm")
        return None
    try:
        import submitit
    except ImportError:
        raise UsageError("--cluster trains through submitit: pip install 'ved[cluster]'") from None
    executor = submitit.AutoExecutor(folder=Path(args.out) / "jobs" / "%j", cluster=args.cluster)
    device_gpus = 1 if str(args.device).startswith("cuda") else 0
    executor.update_parameters(
        name="ved-reproduce",
        timeout_min=args.job_minutes,
        cpus_per_task=args.job_cpus,
        gpus_per_node=device_gpus,
    )
    if args.slurm_partition:
        executor.update_parameters(slurm_partition=args.slurm_partition)
    return executor


def options_serve(sub) -> argparse.ArgumentParser:
    """`ved serve`: its options, beside its handler."""
    s = sub.add_parser("serve", help="the web demo and HTTP API")
    s.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; 0.0.0.0 for every interface (default: 127.0.0.1)",
    )
    s.add_argument("--port", type=whole(1, 65535), default=8000, help="TCP port to listen on (default: 8000)")
    s.add_argument(
        "--workers",
        type=whole(1, 64),
        default=2,
        help="server processes, each with its own copy of the model; one per core (default: 2)",
    )
    s.add_argument(
        "--queue",
        type=whole(1, 100_000),
        default=256,
        help="generate requests each worker holds while it draws; past them it answers 503 with "
        "Retry-After (default: 256)",
    )
    s.add_argument(
        "--client-connections",
        type=whole(0, 100_000),
        default=64,
        help="open connections one client address may hold; 0: no cap, for a reverse proxy in front, "
        "which is then the one client (default: 64)",
    )
    s.add_argument(
        "--request-seconds",
        type=whole(1, 3600),
        default=10,
        help="time a client has to send a whole request; a slower one is answered 408 (default: 10)",
    )
    s.add_argument(
        "--frame-ancestors",
        action="append",
        metavar="ORIGIN",
        type=frame_origin,
        help="an origin that may show the page in a frame, repeatable, e.g. https://huggingface.co "
        "https://*.hf.space for a Hugging Face Space (default: none; the page refuses every frame)",
    )
    s.add_argument(
        "--allow-host",
        action="append",
        metavar="NAME",
        type=host_name,
        help="a Host name clients may use, repeatable, when serving on a network (default: the "
        "loopback names and --host)",
    )
    add_model(s)
    add_precision(s, "fp32", "fp32 draws for a seed the pixels ved.load() and ved sample draw")
    s.set_defaults(run=cmd_serve)
    return s


def cmd_serve(args):
    from .serve import run

    run(
        args.host,
        args.port,
        args.model,
        args.workers,
        allowed_hosts=args.allow_host,
        queue=args.queue,
        precision=args.precision,
        client_connections=args.client_connections,
        request_seconds=args.request_seconds,
        frame_ancestors=args.frame_ancestors,
    )


def split_settings(argv: list[str], p: argparse.ArgumentParser) -> tuple[list[str], list[tuple[str, str]]]:
    """`ved sample`'s `--NAME VALUE` (or `--NAME=VALUE`) pairs that are none of its own options: the
    model's sampling settings, checked against it once it is loaded (so that a model's new setting
    needs no new flag here). Taken out before argparse, which would read VALUE as a caption."""
    commands = [i for i, token in enumerate(argv) if not token.startswith("-")]
    if not commands or argv[commands[0]] != "sample":
        return argv, []
    known = {option for action in p.sample_parser._actions for option in action.option_strings}
    kept, pairs, i = argv[: commands[0] + 1], [], commands[0] + 1
    while i < len(argv):
        token = argv[i]
        name = token.split("=", 1)[0]
        if token.startswith("--") and len(name) > 2 and name not in known:
            if "=" in token:
                pairs.append((name, token.split("=", 1)[1]))
            elif i + 1 < len(argv):
                pairs.append((name, argv[i + 1]))
                i += 1
            else:
                pairs.append((name, ""))
        else:
            kept.append(token)
        i += 1
    return kept, pairs


def sampling_settings(pairs: list[tuple[str, str]]) -> dict:
    settings = {}
    for name, text in pairs:
        value = parsed_number(text)
        if value is None:
            raise UsageError(
                f"{shown(name, 40)} '{shown(text, 40)}' is not a number; a sampling setting is "
                "--NAME VALUE, e.g. --temperature 0.8"
            )
        settings[name[2:].replace("-", "_")] = value
    return settings


def main(argv=None) -> int:
    p = parser()
    argv, pairs = split_settings(list(sys.argv[1:] if argv is None else argv), p)
    args = p.parse_args(argv)
    debug = os.environ.get("VED_DEBUG", "") not in ("", "0")
    try:
        args.settings = sampling_settings(pairs)
        args.run(args)
    except VedError as e:  # input the user can fix; anything else is ved's own bug
        if debug:
            traceback.print_exc()
        print(f"ved: error: {shown(one_line(e), 500)}", file=sys.stderr)
        return 2
    except (OSError, mnist.DataError) as e:
        if debug:
            traceback.print_exc()
        print(f"ved: error: {shown(_os_message(e), 500)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ved: interrupted; `ved train ... --resume` continues a training run", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(
            f"ved: this is a bug in ved {VERSION}, not in what you gave it; please report it with the "
            "command and the traceback above",
            file=sys.stderr,
        )
        return 1
    return 0


def _os_message(e: Exception) -> str:
    if isinstance(e, OSError) and e.strerror:
        where = f"'{e.filename}': " if e.filename else ""
        return f"{where}{e.strerror}"
    return one_line(e)


if __name__ == "__main__":
    sys.exit(main())
