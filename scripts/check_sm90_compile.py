#!/usr/bin/env python
"""Compile every Triton kernel ahead of time for an H100/H200 (sm_90), without a GPU.

Triton's NVIDIA backend and ptxas ship in the triton wheel, so the whole pipeline (TTIR → TTGIR →
LLVM → PTX → cubin) runs on a CPU-only machine. This catches what the interpreter cannot: layout and
shape rules of ``tl.dot``, unsupported dtypes, register/shared-memory overflows, and API differences
between Triton versions (run it under each version you support).

Each kernel module lists its compile cases in ``sm90_compile_cases()``: a list of
``(jit_function, signature, constexprs, options)`` tuples, as taken by ``triton.compiler.ASTSource``
and ``triton.compile``.

Usage:  python scripts/check_sm90_compile.py [module ...]
"""

import importlib
import os
import sys
import time

os.environ.pop("TRITON_INTERPRET", None)  # kernels must be real JIT functions, not interpreted

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

KERNEL_MODULES = [
    "kernels.relpos_attention",
    "kernels.bottleneck",
    "kernels.factor_loss",
    "kernels.corrupt",
]


def main(argv: list[str]) -> int:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    target = GPUTarget("cuda", 90, 32)
    modules = argv or KERNEL_MODULES
    failures, compiled = [], 0
    for name in modules:
        module = importlib.import_module(name)
        for fn, signature, constexprs, options in module.sm90_compile_cases():
            label = f"{name}.{fn.__name__} {constexprs} {options}"
            start = time.perf_counter()
            try:
                kernel = triton.compile(
                    ASTSource(fn=fn, signature=signature, constexprs=constexprs),
                    target=target,
                    options=options,
                )
            except Exception as exc:  # report every failing case, not just the first
                failures.append(label)
                print(f"FAIL {label}\n     {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                continue
            compiled += 1
            md = kernel.metadata
            print(
                f"ok   {label}: {md.num_warps} warps, {md.shared} B shared, "
                f"{time.perf_counter() - start:.1f}s"
            )
    print(f"triton {triton.__version__}: {compiled} compiled, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
