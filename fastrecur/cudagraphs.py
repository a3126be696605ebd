"""CUDA-graph replay of a state → state step, for rollouts whose shapes keep changing.

An evaluation iteration does little GPU work (≈0.2 ms at the paper's shapes, docs/performance.md §3) but
launches dozens of kernels, so it is launch-bound unless captured. Rollouts trim trailing pads and
drop finished samples, so shapes vary; ``BucketedGraphStep`` rounds them up to a few buckets —
rows to a power of two, width to a multiple of ``width_multiple`` — pads the input with pad tokens,
and replays one graph per bucket. Padding cannot change real outputs: rows are independent and
attention is causal with pads at the end.

``capture=False`` runs the same bucketing and padding eagerly (used on CPUs, and in tests).
"""

from __future__ import annotations

from typing import Callable

import torch


class BucketedGraphStep:
    def __init__(
        self,
        step: Callable[[torch.Tensor], torch.Tensor],
        pad_token: tuple[int, ...],
        *,
        width_multiple: int = 32,
        min_rows: int = 8,
        capture: bool = True,
    ):
        self.step = step
        self.pad_token = pad_token
        self.width_multiple = width_multiple
        self.min_rows = min_rows
        self.capture = capture
        self.graphs: dict[tuple[int, int], tuple[object, torch.Tensor, torch.Tensor]] = {}

    def bucket(self, rows: int, width: int) -> tuple[int, int]:
        padded_rows = max(self.min_rows, 1 << (rows - 1).bit_length())
        padded_width = -(-width // self.width_multiple) * self.width_multiple
        return padded_rows, padded_width

    def _static_input(self, rows: int, width: int, like: torch.Tensor) -> torch.Tensor:
        pad = torch.tensor(self.pad_token, dtype=like.dtype, device=like.device)
        return pad.expand(rows, width, len(self.pad_token)).clone()

    def _graph_for(self, key, like: torch.Tensor):
        if key not in self.graphs:
            static_in = self._static_input(*key, like)
            if self.capture:
                # Warm up on a side stream (allocations, autotuning), then capture.
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    for _ in range(2):
                        self.step(static_in)
                torch.cuda.current_stream().wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    static_out = self.step(static_in)
            else:
                graph, static_out = None, None
            self.graphs[key] = (graph, static_in, static_out)
        return self.graphs[key]

    @torch.no_grad()
    def __call__(self, state: torch.Tensor) -> torch.Tensor:
        rows, width, _ = state.shape
        key = self.bucket(rows, width)
        graph, static_in, static_out = self._graph_for(key, state)
        static_in[rows:] = torch.tensor(self.pad_token, dtype=state.dtype, device=state.device)
        static_in[:rows, width:] = torch.tensor(self.pad_token, dtype=state.dtype, device=state.device)
        static_in[:rows, :width] = state
        if graph is None:
            out = self.step(static_in)
        else:
            graph.replay()
            out = static_out
        return out[:rows, :width].clone()
