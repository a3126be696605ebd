"""Where the time goes: a ``torch.profiler`` trace of a few training steps (triton backend, eager),
summarised as tables — device time per kernel and per range (fastrecur's NVTX range names, emitted
as ``record_function`` ranges), each as a share of the step — and the trace itself, gzipped and cut
down to fit what a device run may return (16 MiB per file)."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from collections import defaultdict

import torch

from .measure import sync
from .runner import Item
from .shapes import Sizes

RANGES = ("step", "teacher", "forward_loss", "backward", "optimizer", "embed", "attention", "mlp", "readout")
MAX_TRACE_BYTES = 15 * 2**20
TRACE_NAME = "trace.json.gz"


def _tables(prof, steps: int, on_gpu: bool, top: int = 25) -> dict:
    from torch.autograd import DeviceType

    kernels = defaultdict(lambda: [0.0, 0])
    ranges = defaultdict(lambda: [0.0, 0.0, 0])  # device µs, host µs, calls
    spans = defaultdict(float)  # a range's span on the device timeline (kineto's gpu_user_annotation)
    for e in prof.events():
        if e.device_type == DeviceType.CUDA and e.name in RANGES:
            spans[e.name] += e.time_range.elapsed_us()
        elif e.device_type == DeviceType.CUDA:
            k = kernels[e.name]
            k[0] += e.time_range.elapsed_us()
            k[1] += 1
        elif e.name in RANGES:
            r = ranges[e.name]
            r[0] += e.device_time_total  # kernels launched inside the range
            r[1] += e.time_range.elapsed_us()
            r[2] += 1
    for name, span in spans.items():  # first to last kernel of the range, gaps included
        ranges[name][0] = span
    if not on_gpu:  # the dry run: no device activity; the busiest host operators stand in for kernels
        for avg in prof.key_averages():
            if avg.key not in RANGES:
                kernels[avg.key] = [avg.self_cpu_time_total, avg.count]
    total = sum(k[0] for k in kernels.values()) or 1.0
    step_us = ranges["step"][0 if on_gpu else 1] / steps if "step" in ranges else total / steps
    kernel_rows = sorted(kernels.items(), key=lambda kv: -kv[1][0])[:top]
    return {
        "steps": steps,
        "time_kind": "device" if on_gpu else "host (no GPU: operators, not kernels)",
        "step_ms": step_us / 1e3,
        "kernel_total_ms_per_step": total / steps / 1e3,
        "kernels": [{"name": name[:120], "calls_per_step": c / steps, "ms_per_step": t / steps / 1e3, "share": t / total}
                    for name, (t, c) in kernel_rows],  # fmt: skip
        "ranges": [{"name": name, "calls_per_step": r[2] / steps, "device_ms_per_step": r[0] / steps / 1e3,
                    "host_ms_per_step": r[1] / steps / 1e3, "share_of_step": (r[0] if on_gpu else r[1]) / steps / max(step_us, 1e-9)}
                   for name, r in sorted(ranges.items(), key=lambda kv: RANGES.index(kv[0]))],  # fmt: skip
    }


def write_trace(prof, out_dir: str) -> dict:
    """The chrome trace, gzipped; host-side events are dropped first if it does not fit."""
    raw = os.path.join(tempfile.mkdtemp(prefix="acceptance-trace-"), "trace.json")
    prof.export_chrome_trace(raw)
    with open(raw) as f:
        trace = json.load(f)
    events = trace.get("traceEvents", [])
    target = os.path.join(out_dir, TRACE_NAME)
    kept = "all events"
    for label, keep in (
        ("all events", lambda e: True),
        ("device events and ranges", lambda e: e.get("cat") not in ("cpu_op", "python_function", "cuda_runtime", "cuda_driver")),
        ("kernels and ranges", lambda e: e.get("cat") in ("kernel", "gpu_user_annotation", "user_annotation") or e.get("ph") == "M"),
    ):
        trace["traceEvents"] = [e for e in events if keep(e)]
        with gzip.open(target, "wt", compresslevel=6) as f:
            json.dump(trace, f)
        kept = label
        if os.path.getsize(target) <= MAX_TRACE_BYTES:
            break
    size = os.path.getsize(target)
    if size > MAX_TRACE_BYTES:
        os.remove(target)
        return {"trace": None, "trace_note": f"trace too large even reduced ({size} B); not kept"}
    return {"trace": TRACE_NAME, "trace_bytes": size, "trace_kept": kept, "trace_events": len(trace["traceEvents"])}


def profile_training(sizes: Sizes, device, out_dir: str) -> dict:
    from bench.e2e.test_e2e import trainer_for

    from fastrecur.profiling import enable_profiler_ranges

    enable_profiler_ranges()
    trainer, sb = trainer_for(sizes.bench_size, "triton", sizes.e2e["lengths"][0], tempfile.mkdtemp(prefix="acceptance-"))
    for _ in range(sizes.warmup):  # none in a dry run
        trainer.train_step(sb)
    sync(device)
    on_gpu = device.type == "cuda"
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if on_gpu else [])
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(sizes.profile_steps):
            trainer.train_step(sb)
        sync(device)
    return {"status": "info", "length": sb.tokens.shape[1], "sequences": sb.num_iters * sb.tokens.shape[0],
            **_tables(prof, sizes.profile_steps, on_gpu), **write_trace(prof, out_dir)}  # fmt: skip


def profile_items(sizes: Sizes, device, out_dir: str) -> list[Item]:
    return [Item(f"torch.profiler, {sizes.profile_steps} training steps (triton)", lambda: profile_training(sizes, device, out_dir))]
