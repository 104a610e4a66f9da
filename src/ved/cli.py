"""`ved ...` subcommands. Thin: parse arguments, call the modules, turn known errors into one line."""
from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np

from . import captions, mnist
from .captions import CaptionError


class UsageError(ValueError):
    """Bad input the user can fix; printed as one line."""


def cmd_data(args):
    data = mnist.load(args.data_dir, progress=not args.quiet, log=lambda m: print(m, file=sys.stderr))
    print(f"MNIST verified (sha256 {data.content_hash()[:16]}...) at {mnist.cache_path()}")
    for split in captions.SPLITS:
        print(f"  {split}: {len(data.split(split)[1])} images")


def cmd_captions_list(args):
    pool = captions.caption_pool(args.family, args.split, args.seed)
    lines = [f"{c}\t{d}" for d in range(10) for c in pool[d]]
    sys.stdout.write("".join(line + "\n" for line in lines[: args.n]))


def cmd_captions_parse(args):
    digits = [captions.parse(c) for c in args.caption]  # all or nothing: a bad one stops before output
    print("\n".join(map(str, digits)))


def cmd_judge_train(args):
    from .pipeline import device_of
    from .train import train_judge

    result = train_judge(args.out, str(device_of(args.device)), epochs=args.epochs, seed=args.seed,
                         progress=not args.quiet)
    print(f"judge: test accuracy {result['test_accuracy']:.4f} -> {args.out}")


def cmd_train(args):
    from .pipeline import device_of, load_judge
    from .train import load_config, train

    config_path = Path(args.config)
    if not config_path.exists():
        raise UsageError(f"config file '{args.config}' not found; see configs/ for examples")
    config = load_config(config_path)
    if args.seed is not None:
        config["train"]["seed"] = args.seed
    if args.epochs is not None:
        config["train"]["max_epochs"] = args.epochs
    config["name"] = config_path.stem
    out = Path(args.out or Path("runs") / config_path.stem)
    device = str(device_of(args.device))
    from . import distributed

    dist = distributed.setup(device)
    device = dist.device if dist else device  # under torchrun each rank takes its own GPU
    try:
        result = train(config, out, device=device, resume=args.resume, judge=load_judge(device=device),
                       progress=not args.quiet, dist=dist)
    finally:
        distributed.teardown(dist)
    if dist is None or dist.rank == 0:
        s = result["state"]
        print(f"trained {s['epoch']} epochs in {s['seconds']:.1f}s; best epoch {s['best_epoch']} "
              f"(valid {config['train']['early_stop_on']} {s['best_valid']:.4f}) -> {out}")


def read_captions(args) -> list[str]:
    lines = list(args.caption)
    if args.captions_file:
        path = Path(args.captions_file)
        if not path.exists():
            raise UsageError(f"captions file '{path}' not found")
        lines += [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise UsageError("no captions: give CAPTION arguments or --captions-file FILE")
    return lines


def cmd_sample(args):
    from .pipeline import load

    caption_list = read_captions(args)
    for c in caption_list:  # name the caption in the error, before anything is written
        try:
            captions.words(c)
        except CaptionError as e:
            raise CaptionError(f"caption '{c}': {e}") from None
    out = Path(args.out)
    if out.suffix not in (".npy", ".png"):
        raise UsageError(f"--out must end in .npy or .png, got '{out.name}'")
    images = load(args.model, device=args.device).generate(caption_list, args.n, args.seed)
    from .checkpoint import atomic_write_bytes

    if out.suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, images)
        atomic_write_bytes(out, buf.getvalue())
    else:
        from .report import sample_grid

        sample_grid(images, caption_list, out)
    print(f"wrote {images.shape[0]}x{images.shape[1]} samples to {out}")


def cmd_evaluate(args):
    from .metrics import evaluate_model
    from .pipeline import device_of, resolve_model

    folder = resolve_model(args.model)
    result = evaluate_model(folder, families=args.family, splits=args.split, device=str(device_of(args.device)),
                            progress=not args.quiet)
    text = json.dumps(result, indent=2)
    if args.json:
        from .checkpoint import atomic_write_text

        atomic_write_text(Path(args.json), text)
    from .metrics import summary_table

    print(summary_table(result))


def cmd_reproduce(args):
    from .reproduce import reproduce

    path = reproduce(Path(args.out), quick=args.quick, device=args.device, retrain_judge=args.train_judge,
                     readme=args.readme, ship=args.ship)
    print(f"report: {path}")


def cmd_serve(args):
    from .serve import run

    if args.workers < 1:
        raise UsageError(f"--workers must be 1 or more, got {args.workers}")
    run(args.host, args.port, args.model, args.workers)


def add_device(p):
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")


def add_quiet(p):
    p.add_argument("--quiet", action="store_true", help="no progress bars (default: off)")


def add_model(p):
    p.add_argument("--model", help="shipped model name or run folder (default: the best shipped model)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ved", description="Captions to MNIST digits with variational encoder-decoders.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("data", help="get, verify and cache MNIST; print where it is")
    s.add_argument("--data-dir", help="folder of MNIST IDX files to use first (default: $VED_DATA_DIR)")
    add_quiet(s)
    s.set_defaults(run=cmd_data)

    s = sub.add_parser("captions", help="list a family's captions or parse captions")
    csub = s.add_subparsers(dest="captions_command", required=True, metavar="ACTION")
    c = csub.add_parser("list", help="print caption<TAB>digit for a family and split")
    c.add_argument("--family", choices=captions.FAMILIES, default="arithmetic", help="(default: arithmetic)")
    c.add_argument("--split", choices=captions.SPLITS, default="train", help="(default: train)")
    c.add_argument("-n", type=int, default=None, help="at most N lines (default: all)")
    c.add_argument("--seed", type=int, default=0, help="caption seed (default: 0)")
    c.set_defaults(run=cmd_captions_list)
    c = csub.add_parser("parse", help="print the digit each caption means")
    c.add_argument("caption", nargs="+", help="one caption per argument (quote it)")
    c.set_defaults(run=cmd_captions_parse)

    s = sub.add_parser("judge", help="the evaluator CNN")
    jsub = s.add_subparsers(dest="judge_command", required=True, metavar="ACTION")
    j = jsub.add_parser("train", help="train the judge on the 50k training split")
    j.add_argument("--out", default="runs/judge", help="(default: runs/judge)")
    j.add_argument("--epochs", type=int, default=12, help="(default: 12)")
    j.add_argument("--seed", type=int, default=0, help="(default: 0)")
    add_device(j)
    add_quiet(j)
    j.set_defaults(run=cmd_judge_train)

    s = sub.add_parser("train", help="train a generator from a config file")
    s.add_argument("--config", required=True, help="TOML file, e.g. configs/paper-arithmetic.toml")
    s.add_argument("--out", help="run folder (default: runs/<config name>)")
    add_device(s)
    s.add_argument("--seed", type=int, help="override [train] seed (default: the config's)")
    s.add_argument("--epochs", type=int, help="override [train] max_epochs (default: the config's)")
    s.add_argument("--resume", action="store_true", help="continue the run in --out (default: off)")
    add_quiet(s)
    s.set_defaults(run=cmd_train)

    s = sub.add_parser("sample", help="draw digits for captions into a .npy array or a .png grid")
    s.add_argument("caption", nargs="*", help="captions, one per argument (quote each)")
    add_model(s)
    s.add_argument("-n", type=int, default=8, help="samples per caption (default: 8)")
    s.add_argument("--seed", type=int, default=0, help="(default: 0)")
    s.add_argument("--captions-file", help="file with one caption per line")
    s.add_argument("--out", default="samples.png", help=".npy (uint8, captions x n x 28 x 28) or .png grid "
                                                         "(default: samples.png)")
    add_device(s)
    s.set_defaults(run=cmd_sample)

    s = sub.add_parser("evaluate", help="judge accuracy, FJD, diversity and losses of a model")
    add_model(s)
    s.add_argument("--family", action="append", choices=captions.FAMILIES,
                   help="repeatable (default: the model's training family)")
    s.add_argument("--split", action="append", choices=captions.SPLITS, help="repeatable (default: valid, test)")
    s.add_argument("--json", help="also write the full results here")
    add_device(s)
    add_quiet(s)
    s.set_defaults(run=cmd_evaluate)

    s = sub.add_parser("reproduce", help="the whole study in one command: models, metrics, figures, report")
    s.add_argument("--out", default="out/reproduce", help="(default: out/reproduce)")
    s.add_argument("--quick", action="store_true", help="small, fast version for smoke tests (default: off)")
    s.add_argument("--train-judge", action="store_true", help="retrain the judge instead of using the shipped one")
    s.add_argument("--readme", help="also rewrite the results and beyond-the-paper blocks of this README "
                                    "(default: off)")
    s.add_argument("--ship", action="store_true", help="copy the trained models into the package's shipped "
                                                         "weights (default: off)")
    add_device(s)
    s.set_defaults(run=cmd_reproduce)

    s = sub.add_parser("serve", help="the web demo and HTTP API")
    s.add_argument("--host", default="127.0.0.1", help="(default: 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="(default: 8000)")
    s.add_argument("--workers", type=int, default=2, help="server processes, each with its own copy of the "
                                                           "model; one per core (default: 2)")
    add_model(s)
    s.set_defaults(run=cmd_serve)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from .pipeline import ModelError

    try:
        args.run(args)
    except (CaptionError, mnist.DataError, ModelError, UsageError, ValueError, FileNotFoundError) as e:
        print(f"ved: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ved: interrupted; `ved train ... --resume` continues a training run", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
