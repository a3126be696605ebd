"""The machine: device, driver, versions, and the two ceilings measured on it (METHOD.md: a large
device-to-device copy, counting bytes read plus written, and a large bf16 matrix product on random
data). Later sections read the copy bandwidth from ``workdir/ceilings.json`` for the fused ops' floors."""

from __future__ import annotations

import json
import os
import platform
import subprocess

import torch

from .measure import time_fn
from .runner import Item


def host_facts(repo: str) -> dict:
    """What the parent can learn without touching CUDA."""
    import triton

    def run(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=repo).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    smi = run("nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader")
    dirty = run("git", "status", "--porcelain", "--untracked-files=no")
    return {
        "commit": run("git", "rev-parse", "HEAD") or "unknown",
        "commit_dirty": bool(dirty),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cuda_runtime": torch.version.cuda,
        "nvidia_smi": smi or "(not available)",
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
    }


def device_facts(device) -> dict:
    if device.type != "cuda":
        return {"status": "info", "device": "cpu (Triton interpreter; dry run)"}
    props = torch.cuda.get_device_properties(device)
    return {
        "status": "info",
        "device": props.name,
        "capability": f"{props.major}.{props.minor}",
        "multiprocessors": props.multi_processor_count,
        "memory_gib": round(props.total_memory / 2**30, 1),
        "l2_mib": round(getattr(props, "L2_cache_size", 0) / 2**20, 1),
        "driver_cuda": torch.cuda.driver_version() if hasattr(torch.cuda, "driver_version") else None,
        "cudnn": torch.backends.cudnn.version(),
    }


def ceilings(device, workdir: str, dry_run: bool) -> dict:
    n_bytes, n = (2**31, 8192) if not dry_run else (2**20, 128)
    src = torch.randn(n_bytes // 4, device=device)
    dst = torch.empty_like(src)
    copy = time_fn(lambda: dst.copy_(src), device, warmup=3, reps=10)
    del src, dst
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    matmul = time_fn(lambda: a @ b, device, warmup=3, reps=10)
    out = {
        "status": "info",
        "copy_bytes_per_s": 2 * n_bytes / (copy["median_ms"] / 1e3),
        "copy_gb_per_s": 2 * n_bytes / (copy["median_ms"] / 1e3) / 1e9,
        "bf16_matmul_tflops": 2 * n**3 / (matmul["median_ms"] / 1e3) / 1e12,
        "note": f"copy: bytes read + written of a {n_bytes / 2**30:g} GiB fp32 copy; matmul: {n}³ bf16 on random data",
    }
    if not dry_run:
        with open(os.path.join(workdir, "ceilings.json"), "w") as f:
            json.dump(out, f)
    return out


def environment_items(device, workdir: str, dry_run: bool) -> list[Item]:
    return [Item("device", lambda: device_facts(device)), Item("measured ceilings", lambda: ceilings(device, workdir, dry_run))]
