"""A model folder's card: README.md with the Hugging Face Hub's YAML metadata (library, license,
tags, and the evaluation results as `model-index`), then what the model is and how to load it.
`ved reproduce --ship` and `Pipeline.save_pretrained` write it from the folder's config alone."""

from __future__ import annotations

import json

from .about import VERSION

CARD = "README.md"
METRICS = [  # (provenance key, model-index type, name)
    ("test_accuracy", "accuracy", "Judged accuracy on test captions (ved's judge CNN reads each image)"),
    ("test_fd_judge", "frechet_distance", "FD_judge: Frechet distance in the judge's features, per digit"),
    ("test_diversity", "diversity", "Pixel diversity relative to real digits (1 = as varied)"),
]


def _yaml(value) -> str:
    return json.dumps(value)  # JSON strings and numbers are YAML too, with every character escaped


def model_card(config: dict, name: str) -> str:
    """The card of the model a resolved config describes (its [provenance] metrics, where it has them)."""
    about = config.get("provenance", {})
    metrics = about.get("metrics", {})
    families = metrics.get("families") or [config["data"]["family"]]
    kind = config["model"]["kind"]
    lines = [
        "---",
        "library_name: ved",
        "license: mit",
        "pipeline_tag: text-to-image",
        "tags:",
        *(f"- {tag}" for tag in ("ved", "mnist", "text-to-image", "variational-autoencoder", kind)),
        "datasets:",
        "- mnist",
    ]
    scores = [(t, label, metrics[key]) for key, t, label in METRICS if key in metrics]
    if scores:
        lines += [
            "model-index:",
            f"- name: {_yaml(name)}",
            "  results:",
            "  - task:",
            "      type: text-to-image",
            "      name: Caption-conditioned MNIST digits",
            "    dataset:",
            "      type: mnist",
            f"      name: {_yaml('MNIST test split, ved caption families: ' + ', '.join(families))}",
            "      split: test",
            "    metrics:",
        ]
        for kind_of, label, value in scores:
            lines += [f"    - type: {kind_of}", f"      name: {_yaml(label)}", f"      value: {_yaml(value)}"]
    lines += [
        "---",
        "",
        f"# {name}",
        "",
        f"A ved model ({kind}) that draws 28x28 MNIST digits for captions "
        f"of the {', '.join(families)} famil{'y' if len(families) == 1 else 'ies'}: `three plus two`, "
        "`min nine five seven`, `this is a black five on a white background`.",
        "",
        "```python",
        "import ved",
        "",
        'pipe = ved.load("path/to/this/folder")  # or "owner/repo" on the Hub; safetensors and JSON only',
        'out = pipe(prompt=["three plus two"], num_images_per_prompt=4, generator=0)',
        "out.images                               # four PIL images of a 5",
        "```",
        "",
    ]
    if scores:
        lines += ["| test captions | value |", "|---|---|"]
        lines += [f"| {label} | {value} |" for _, label, value in scores]
        lines.append("")
    settings = ", ".join(f"{k} = {v}" for k, v in config.get("sample", {}).items()) or "-"
    lines += [
        f"Sampling settings: {settings}.",
        f"Trained by ved {about.get('ved', VERSION)} (commit {about.get('commit') or 'unknown'}) on "
        f"MNIST sha256 {about.get('mnist_sha256', 'unrecorded')}; config.json says the rest.",
        "",
    ]
    return "\n".join(lines)
