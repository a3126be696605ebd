#!/usr/bin/env python
"""Compile every Triton kernel ahead of time for an H100/H200 (sm_90) without a GPU, and report
registers, spills, shared memory and occupancy per kernel and configuration.

Triton's NVIDIA backend and ptxas ship in the triton wheel, so the whole pipeline (TTIR → TTGIR →
LLVM → PTX → cubin) runs on a CPU-only machine. This catches what the interpreter cannot: layout and
shape rules of ``tl.dot``, unsupported dtypes, register spills, shared-memory overflows, and API
differences between Triton versions (run it under each version you support).

Each kernel module lists its compile cases in ``sm90_compile_cases()``: ``(jit_function, signature,
constexprs, options, label)`` tuples, generated from the same table its launcher reads, so that
what is checked here is what runs. Registers and spills are ptxas's own report of the compile
(Triton runs ptxas with ``-v``), with a fresh cache so that nothing is skipped.

Occupancy against an H100's limits per SM (65,536 registers allocated per warp in units of 256,
2,048 threads, 32 blocks, 228 KiB of shared memory of which 1 KiB is reserved per block, 227 KiB
per block): resident warps / 64, and which limit binds.

Usage:
    python scripts/check_sm90_compile.py [module ...] [--markdown [--compare JSON]] [--json PATH] [--jobs N] [--allow-spills]

The kernels checked are this checkout's (the folder kernels/, imported as ``fastrecur_kernels``),
whether or not fastrecur is installed in the Python that runs the script.

Exit status 1 if a case fails to compile, needs more shared memory than a block may have, or
spills (unless --allow-spills). For the GPU image's Triton 3.6, run it with a Python that has
triton==3.6.0 (see bench/RESULTS.md: a separate virtual environment).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import multiprocessing
import os
import re
import sys
import tempfile
import time

KERNEL_MODULES = [
    "fastrecur_kernels.relpos_attention",
    "fastrecur_kernels.bottleneck",
    "fastrecur_kernels.factor_loss",
    "fastrecur_kernels.corrupt",
]

# H100 / H200 (sm_90) per-SM and per-block limits.
REGS_PER_SM = 65_536
REG_ALLOC_UNIT = 256  # registers are allocated per warp in units of 256
MAX_THREADS_PER_SM = 2048
MAX_WARPS_PER_SM = 64
MAX_BLOCKS_PER_SM = 32
SMEM_PER_SM = 228 * 1024
SMEM_RESERVED_PER_BLOCK = 1024
SMEM_PER_BLOCK = 227 * 1024


def occupancy(regs: int, warps: int, shared: int) -> dict:
    """Resident blocks per SM under each limit, the binding one, and warps / 64."""
    regs_per_warp = -(-max(regs, 1) * 32 // REG_ALLOC_UNIT) * REG_ALLOC_UNIT
    limits = {
        "registers": REGS_PER_SM // (regs_per_warp * warps),
        "threads": MAX_THREADS_PER_SM // (32 * warps),
        "shared": SMEM_PER_SM // (shared + SMEM_RESERVED_PER_BLOCK),
        "blocks": MAX_BLOCKS_PER_SM,
    }
    blocks = min(limits.values())
    return {"blocks_per_sm": blocks, "occupancy": blocks * warps / MAX_WARPS_PER_SM, "limited_by": min(limits, key=limits.get)}


def _setup_triton() -> None:
    """A fresh cache (a cached kernel skips ptxas and its report) and ptxas's log on stdout."""
    os.environ.pop("TRITON_INTERPRET", None)  # kernels must be real JIT functions, not interpreted
    if "TRITON_DUMP_PTXAS_LOG" not in os.environ:  # once per process (pool workers inherit both)
        os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp(prefix="sm90-check-")
        os.environ["TRITON_DUMP_PTXAS_LOG"] = "1"
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9 warns when unset; 1 is its default
    from this_checkout import use_this_checkout  # scripts/this_checkout.py

    use_this_checkout()


def _cases(module_name: str) -> list:
    """``(module, index, label)`` of each distinct compile case: a case whose kernel, signature,
    constexprs and options repeat an earlier one's compiles to the same binary and is skipped."""
    jobs, seen = [], set()
    for i, case in enumerate(importlib.import_module(module_name).sm90_compile_cases()):
        fn, signature, constexprs, options = case[:4]
        key = (fn.__name__, *(tuple(sorted((k, repr(v)) for k, v in part.items()))
                              for part in (signature, constexprs, options)))  # fmt: skip
        if key not in seen:
            seen.add(key)
            jobs.append((module_name, i, case[4] if len(case) > 4 else {}))
    return jobs


def compile_case(job: tuple) -> dict:
    """Compile case ``index`` of ``module_name``; returns its resource figures (or the error)."""
    module_name, index, label = job
    _setup_triton()
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn, signature, constexprs, options = importlib.import_module(module_name).sm90_compile_cases()[index][:4]
    row = {"module": module_name, "kernel": fn.__name__, "label": label, "options": options,
           "constexprs": {k: v for k, v in constexprs.items() if k.isupper()}}  # fmt: skip
    start = time.perf_counter()
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            kernel = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs),
                                    target=GPUTarget("cuda", 90, 32), options=options)  # fmt: skip
    except Exception as exc:  # report every failing case, not just the first
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return row
    text = log.getvalue()
    regs = re.search(r"Used (\d+) registers", text)
    spills = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", text)
    if not regs or not spills:
        row["error"] = "no ptxas resource report found (is TRITON_DUMP_PTXAS_LOG honoured by this Triton?)"
        return row
    md = kernel.metadata
    row.update(warps=md.num_warps, registers=int(regs.group(1)), stack=int(spills.group(1)),
               spill_stores=int(spills.group(2)), spill_loads=int(spills.group(3)), shared=md.shared,
               seconds=round(time.perf_counter() - start, 1), **occupancy(int(regs.group(1)), md.num_warps, md.shared))  # fmt: skip
    return row


def problems(row: dict, allow_spills: bool) -> list[str]:
    if "error" in row:
        return [row["error"]]
    found = []
    if row["shared"] > SMEM_PER_BLOCK:
        found.append(f"needs {row['shared']} B of shared memory; a block may have {SMEM_PER_BLOCK}")
    if not allow_spills and (row["spill_stores"] or row["spill_loads"]):
        found.append(f"spills {row['spill_stores']} B stored / {row['spill_loads']} B loaded")
    return found


def _label(row: dict) -> str:
    label = row["label"] or row["constexprs"]
    return ", ".join(f"{k}={v}" for k, v in label.items())


def markdown(reports: list[tuple[str, list[dict]]]) -> str:
    """One table, a column group per ``(triton version, rows)`` report; rows matched by kernel and label."""
    head = "| kernel | configuration | warps, stages |" + "".join(
        f" {v}: registers | spill st/ld B | shared KiB | blocks/SM, occupancy (limit) |" for v, _ in reports)
    lines = [f"Triton {' and '.join(v for v, _ in reports)}, sm_90 (ptxas from the triton wheel):", "", head,
             "|---|---|---|" + "---:|---:|---:|---|" * len(reports)]  # fmt: skip
    by_key = [{(r["module"], r["kernel"], _label(r)): r for r in rows} for _, rows in reports]
    for first in reports[0][1]:
        key = (first["module"], first["kernel"], _label(first))
        options = first["options"]
        cells = [f"{options.get('num_warps', '')}w {options.get('num_stages', '')}".strip()]
        for rows in by_key:
            r = rows.get(key)
            if r is None or "error" in r:
                cells.append(f"**{r['error'][:60] if r else 'not compiled'}** | | |")
                continue
            spill = f"{r['spill_stores']}/{r['spill_loads']}"
            cells.append(f"{r['registers']} | {f'**{spill}**' if r['spill_stores'] or r['spill_loads'] else spill} | "
                         f"{r['shared'] / 1024:.1f} | {r['blocks_per_sm']}, {r['occupancy']:.0%} ({r['limited_by']})")  # fmt: skip
        lines.append(f"| {first['kernel']} | {key[2]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("modules", nargs="*", default=KERNEL_MODULES)
    p.add_argument("--markdown", action="store_true", help="print the table as markdown (bench/RESULTS.md)")
    p.add_argument("--compare", metavar="JSON", help="with --markdown: add the columns of a --json report of "
                   "another Triton version (bench/RESULTS.md: 3.6 beside 3.9)")
    p.add_argument("--json", help="write every row to this file")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="compiles in parallel (default: all cores)")
    p.add_argument("--allow-spills", action="store_true", help="report spills without failing")
    args = p.parse_args(argv)
    _setup_triton()
    import triton

    jobs = [job for name in args.modules for job in _cases(name)]
    if args.jobs > 1:
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            rows = pool.map(compile_case, jobs, chunksize=1)
    else:
        rows = [compile_case(job) for job in jobs]
    failures = 0
    for row in rows:
        found = problems(row, args.allow_spills)
        failures += bool(found)
        if "error" in row:
            print(f"FAIL {row['module']}.{row['kernel']} [{_label(row)}]\n     {row['error']}")
            continue
        status = "FAIL" if found else "ok  "
        print(f"{status} {row['module']}.{row['kernel']} [{_label(row)}] {row['options']}: {row['registers']} registers, "
              f"spills {row['spill_stores']}/{row['spill_loads']} B, {row['shared']} B shared, {row['occupancy']:.0%} occupancy"
              + (f"\n     {'; '.join(found)}" if found else ""))  # fmt: skip
    if args.markdown:
        reports = [(triton.__version__, rows)]
        if args.compare:
            with open(args.compare) as f:
                other = json.load(f)
            reports.append((other["triton"], other["rows"]))
        print("\n" + markdown(reports))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"triton": triton.__version__, "rows": rows}, f, indent=1)
    print(f"triton {triton.__version__}: {len(rows) - failures} ok, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
