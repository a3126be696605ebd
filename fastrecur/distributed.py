"""Data-parallel training under ``torchrun`` (DistributedDataParallel).

    torchrun --nproc_per_node=N -m fastrecur train CONFIG [overrides]

* Each rank takes a disjoint slice (``batch_size / N`` graphs) of every global batch, from the same
  step-addressable data source, so the global batch is the configured one whatever ``N`` is.
* Per step the ranks agree on the iteration count, the trimmed length and the global token count
  (a few integers over a CPU ``gloo`` group: no GPU sync), so N processes compute the gradient of
  the very same loss as one process with the whole batch.
* Rank 0 alone logs and writes checkpoints; a checkpoint does not depend on N, so a run can resume
  with another number of processes.
* NCCL on GPUs (one per process, ``LOCAL_RANK``), gloo on CPUs. The process group is torn down on
  exit, error or Ctrl-C.

Outside torchrun (no ``WORLD_SIZE``, or 1) everything runs in one process and
``distributed_context`` yields None.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import torch
import torch.distributed as torch_dist


@dataclass
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    host_group: Any  # a gloo group for small host-side integers

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def _all_reduce(self, values, op) -> tuple[int, ...]:
        t = torch.tensor(values, dtype=torch.int64)
        torch_dist.all_reduce(t, op=op, group=self.host_group)
        return tuple(int(v) for v in t.tolist())

    def all_max(self, *values: int) -> tuple[int, ...]:
        return self._all_reduce(values, torch_dist.ReduceOp.MAX)

    def all_sum(self, *values: int) -> tuple[int, ...]:
        return self._all_reduce(values, torch_dist.ReduceOp.SUM)


@contextlib.contextmanager
def distributed_context(train_settings) -> Iterator[Optional[DistContext]]:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        yield None
        return
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = train_settings.device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    torch_dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world_size)
    try:
        host_group = torch_dist.new_group(backend="gloo") if use_cuda else torch_dist.group.WORLD
        yield DistContext(rank, world_size, local_rank, device, host_group)
        # Leave together: a rank that tears its connections down while rank 0 still writes the
        # final checkpoint can make the other side's transport abort. (Skipped on errors, where
        # torchrun stops the remaining ranks.)
        torch_dist.barrier(group=host_group)
    finally:
        torch_dist.destroy_process_group()
