"""torch.distributed for `torchrun ... -m ved train`: DDP with gloo on CPU, NCCL on CUDA.

Outside torchrun (no WORLD_SIZE in the environment) setup() returns None and
training runs in one process. Every rank walks the same shuffled epoch order
and takes its own slice of each global batch (batches.py), so the global
batch is the config's; DDP averages the gradients.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as td


class Distributed:
    def __init__(self, device: str):
        backend = "nccl" if device.startswith("cuda") else "gloo"
        td.init_process_group(backend)
        self.rank, self.world_size = td.get_rank(), td.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.device = f"cuda:{self.local_rank}" if device.startswith("cuda") else "cpu"
        if device.startswith("cuda"):
            torch.cuda.set_device(self.local_rank)

    def wrap(self, model):
        ids = [self.local_rank] if self.device.startswith("cuda") else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average scalar metrics over ranks."""
        keys = sorted(values)
        t = torch.tensor(
            [values[k] for k in keys],
            dtype=torch.float64,
            device=self.device if self.device.startswith("cuda") else "cpu",
        )
        td.all_reduce(t)
        return {k: (v / self.world_size).item() for k, v in zip(keys, t)}

    def barrier(self) -> None:
        td.barrier()

    def gather(self, state: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's copy of a small CPU tensor (its RNG state), for rank 0's checkpoint."""
        out = [None] * self.world_size
        td.all_gather_object(out, state)
        return out


def setup(device: str) -> Distributed | None:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    return Distributed(device)


def teardown(dist: Distributed | None) -> None:
    if dist is not None:
        td.destroy_process_group()
