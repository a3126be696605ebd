"""Shared harness for the pytest-benchmark suites in bench/.

Run:  python -m pytest bench/ --benchmark-only [--bench-size paper|smoke] [--benchmark-json out.json]

* ``--bench-size paper`` (default on a GPU) uses the shapes of the paper's training step;
  ``smoke`` (default on a CPU) uses tiny shapes so the suites can be exercised anywhere (timings
  on the CPU interpreter mean nothing; they only show that every variant runs).
* Variants of one operation share a benchmark ``group`` so pytest-benchmark prints them side by side
  with ratios; ``measure`` below records TFLOP/s, GB/s and peak memory in ``extra_info``.
"""

from __future__ import annotations

import torch

from fastrecur_kernels.interpreter import use_interpreter

use_interpreter()  # before any kernel module is imported: the interpreter unless there is a GPU

import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption(
        "--bench-size",
        choices=["paper", "smoke"],
        default=None,
        help="shapes to benchmark: the paper's (GPU) or tiny smoke shapes (default on CPU)",
    )


@pytest.fixture(scope="session")
def bench_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(scope="session")
def bench_size(request, bench_device) -> str:
    return request.config.getoption("--bench-size") or ("paper" if bench_device.type == "cuda" else "smoke")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@pytest.fixture
def measure(benchmark, bench_device):
    """``measure(fn, flops=..., bytes_moved=..., rounds=...)`` times ``fn`` with device syncs.

    Reports the median time; ``extra_info`` gets ``tflops`` and ``gbps`` (from the given counts,
    over the median time), ``peak_mem_gib`` (CUDA peak allocated during the timed calls, above
    what was allocated before) and the device name.
    """

    def run(fn, *, flops: float | None = None, bytes_moved: float | None = None, rounds: int = 20, warmup: int = 3):
        for _ in range(warmup):
            fn()
        _sync(bench_device)
        if bench_device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(bench_device)
            base = torch.cuda.memory_allocated(bench_device)

        def call():
            out = fn()
            _sync(bench_device)
            return out

        result = benchmark.pedantic(call, rounds=rounds, iterations=1, warmup_rounds=0)
        median = benchmark.stats.stats.median
        info = benchmark.extra_info
        info["device"] = torch.cuda.get_device_name(bench_device) if bench_device.type == "cuda" else "cpu"
        info["median_ms"] = median * 1e3
        if flops:
            info["tflops"] = flops / median / 1e12
        if bytes_moved:
            info["gbps"] = bytes_moved / median / 1e9
        if bench_device.type == "cuda":
            info["peak_mem_gib"] = (torch.cuda.max_memory_allocated(bench_device) - base) / 2**30
        return result

    return run
