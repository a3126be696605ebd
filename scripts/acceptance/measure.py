"""Timing, memory and error measures shared by the acceptance sections.

* ``time_fn``: the median of timed calls after warm-up — CUDA events around each call on a GPU
  (the host waits only after the last one), the host clock on the CPU (dry run);
* ``rel_err``: ‖got − want‖ / ‖want‖ in float64 (METHOD.md: fp32 far under 1e-3, bf16 1e-3…1e-2);
  a NaN or an infinity anywhere makes it infinite, so unwritten (poisoned) outputs fail;
* ``poisoned_allocations``: ``torch.empty`` / ``empty_like`` return NaN (integers −1) meanwhile,
  so an output element a kernel forgets to write shows up (as the tests' ``poisoned_empty``).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Callable, Iterator, Optional

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], object], device: torch.device, *, warmup: int = 3, reps: int = 20,
            max_seconds: Optional[float] = None) -> dict:  # fmt: skip
    """Median milliseconds per call of ``fn`` (warm-up excluded) and the peak memory of the timed calls.

    ``max_seconds`` stops the timed repetitions early (after at least 3) once they have used it.
    """
    for _ in range(warmup):
        fn()
    sync(device)
    base = 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    times = []
    began = time.perf_counter()
    if device.type == "cuda":
        events = []
        for i in range(reps):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            events.append((start, end))
            if max_seconds is not None and i >= 2 and i % 4 == 3:
                end.synchronize()
                if time.perf_counter() - began > max_seconds:
                    break
        torch.cuda.synchronize(device)
        times = [s.elapsed_time(e) for s, e in events]
    else:
        for i in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
            if max_seconds is not None and i >= 2 and time.perf_counter() - began > max_seconds:
                break
    out = {"median_ms": statistics.median(times), "min_ms": min(times), "reps": len(times)}
    if device.type == "cuda":
        out["peak_mem_gib"] = (torch.cuda.max_memory_allocated(device) - base) / 2**30
    return out


def rates(timing: dict, *, flops: Optional[float] = None, bytes_moved: Optional[float] = None) -> dict:
    """TFLOP/s and GB/s of a timing from the counted work."""
    seconds = timing["median_ms"] / 1e3
    out = dict(timing)
    if flops:
        out["tflops"] = flops / seconds / 1e12
    if bytes_moved:
        out["gbps"] = bytes_moved / seconds / 1e9
    return out


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    g, w = got.detach().double(), want.detach().double().to(got.device)
    if not torch.isfinite(g).all():
        return float("inf")
    denom = torch.linalg.vector_norm(w).item()
    diff = torch.linalg.vector_norm(g - w).item()
    return diff / denom if denom > 0 else diff


def check(name: str, got: torch.Tensor, want: torch.Tensor, tol: float, **extra) -> dict:
    err = rel_err(got, want)
    return {"check": name, "rel_err": err, "tol": tol, "ok": bool(err <= tol), **extra}


def verdict(checks: list[dict], **extra) -> dict:
    return {"status": "pass" if checks and all(c["ok"] for c in checks) else "fail", "checks": checks, **extra}


@contextlib.contextmanager
def poisoned_allocations() -> Iterator[None]:
    real_empty, real_empty_like = torch.empty, torch.empty_like

    def poison(t: torch.Tensor) -> torch.Tensor:
        if t.is_floating_point():
            return t.fill_(float("nan"))
        return t.fill_(255 if t.dtype == torch.uint8 else -1)

    torch.empty = lambda *a, **k: poison(real_empty(*a, **k))
    torch.empty_like = lambda *a, **k: poison(real_empty_like(*a, **k))
    try:
        yield
    finally:
        torch.empty, torch.empty_like = real_empty, real_empty_like


def free_memory(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
