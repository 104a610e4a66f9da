"""fp32 or bf16 for the two places ved may compute in bf16: the training step's forward pass
(`[train] precision`) and drawing images (`ved.load(..., precision=)`, `ved sample --precision`,
`ved serve --precision`). Validation, the judge and the models' own fits always run in fp32."""

from __future__ import annotations

CHOICES = ("fp32", "bf16", "auto")


def resolve(setting: str, device) -> str:
    """ "fp32" or "bf16" for a setting of CHOICES, "auto" decided by the hardware the work runs on."""
    if setting not in CHOICES:
        raise ValueError(f"precision must be one of {', '.join(CHOICES)}, got {setting!r}")
    if setting != "auto":
        return setting
    import torch  # here, not at the top: the CLI's parser reads CHOICES and must start without torch

    # On a GPU these small convnets wait on kernel launches, not arithmetic, and autocast's casts
    # add launches: an H200 took 20.8 ms a step of 128 in bf16 against 17.8 in fp32 (docs/speed.md)
    if torch.device(device).type == "cuda":
        return "fp32"
    try:
        fast = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    except AttributeError:  # a torch older than these checks cannot tell: fp32 is the safe guess
        fast = False
    return "bf16" if fast else "fp32"


def autocast_for(precision: str, device) -> dict:
    """torch.autocast's arguments for work in this precision ("fp32": off)."""
    import torch

    return dict(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")
