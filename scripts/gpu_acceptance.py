#!/usr/bin/env python
"""One command turns a lent GPU into verified correctness and speed figures (issue 12).

    python scripts/gpu_acceptance.py --out DIR [--budget-s 480] [--dry-run] [--sections a,b]

Sections, in order, each in its own slice of the budget (``acceptance/runner.py``: forked child
processes, so an illegal memory access, a hang or a crash costs one item, never the run):

1. ``environment`` — device, driver, versions; the measured copy bandwidth and bf16 matmul rate;
2. ``correctness_kernels`` — every kernel compiled at the paper's shapes (B·K = 224, H = 16,
   L = 256 and 1024, d = 24), fp32 and bf16, forward and every gradient against the plain-PyTorch
   reference in float64;
3. ``correctness_e2e`` — triton backend vs reference backend: loss and gradients, a 20-step seeded
   loss curve, closed-loop rollouts at n = 128, one ``torch.compile``d step, CUDA-graph evaluation;
4. ``speed_attention``, ``speed_fused_ops``, ``speed_train``, ``speed_eval`` — side by side, medians
   of CUDA-event timings after warm-up, TFLOP/s or GB/s, peak memory;
5. ``profile`` — a torch.profiler trace of a few training steps, summarised per kernel and range.

Writes ``DIR/report.md``, ``DIR/report.json`` and ``DIR/trace.json.gz`` (three files, each under
16 MiB, so all of them come back from a device run) and prints the targets last. Exit status 1 when
a correctness check fails or any section's item errors or crashes; 0 otherwise (speed targets are
reported, not enforced). ``--dry-run`` runs every section at toy shapes on the CPU in Triton's
interpreter (``torch.compile`` through the ``aot_eager`` backend): the CI test that keeps this
script working between lent GPUs. See bench/RESULTS.md for recording a report.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SECTIONS = ["environment", "correctness_kernels", "correctness_e2e", "speed_attention", "speed_fused_ops",
            "speed_train", "speed_eval", "profile"]  # fmt: skip
# Shares of the budget (a section's unused time goes to the ones after it).
# Correctness gets the largest slices: it also compiles every kernel variant (Triton's disk cache
# then serves the speed sections).
SHARES = {"environment": 0.02, "correctness_kernels": 0.2, "correctness_e2e": 0.17, "speed_attention": 0.18,
          "speed_fused_ops": 0.08, "speed_train": 0.17, "speed_eval": 0.1, "profile": 0.08}  # fmt: skip


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for report.md, report.json and trace.json.gz")
    p.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget for all sections (default 480)")
    p.add_argument("--dry-run", action="store_true", help="toy shapes on the CPU (Triton interpreter)")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of: {', '.join(SECTIONS)}")
    args = p.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        p.error(f"unknown sections {unknown}; choose from {SECTIONS}")
    if args.budget_s <= 0:
        p.error(f"--budget-s must be positive, got {args.budget_s}")
    return args


def _setup_process(dry_run: bool) -> None:
    """Before anything imports the kernels: the interpreter for a dry run; imports from the repo."""
    if dry_run:
        os.environ["TRITON_INTERPRET"] = "1"
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    for path in (os.path.join(REPO, "scripts"), os.path.join(REPO, "tests")):
        if path not in sys.path:
            sys.path.insert(0, path)
    from this_checkout import use_this_checkout  # scripts/this_checkout.py: fastrecur and its kernels from here

    use_this_checkout()


def _dry_run_compile() -> None:
    """On the CPU, torch.compile traces with ``aot_eager`` (no C++ code generation): the dry run
    exercises the compiled paths (graph capture of the custom ops) without minutes of compiling."""
    import torch

    real = torch.compile

    def compile_aot_eager(model=None, **kwargs):
        kwargs.pop("mode", None)
        kwargs["backend"] = "aot_eager"
        return real(model, **kwargs) if model is not None else real(**kwargs)

    torch.compile = compile_aot_eager


def build_sections(names, device, sizes, out_dir: str, workdir: str, dry_run: bool):
    from acceptance import correctness, environment, profile, speed
    from acceptance.runner import Section

    def child_setup(make):
        def make_items():
            if dry_run:
                _dry_run_compile()
            return make()

        return make_items

    makers = {
        "environment": ("Environment", lambda: environment.environment_items(device, workdir, dry_run)),
        "correctness_kernels": ("Correctness: kernels at the real shapes", lambda: correctness.kernel_items(sizes, device)),
        "correctness_e2e": ("Correctness: triton backend vs reference backend", lambda: correctness.e2e_items(sizes, device)),
        "speed_attention": ("Speed: attention", lambda: speed.attention_items(sizes, device)),
        "speed_fused_ops": ("Speed: fused ops", lambda: speed.fused_items(sizes, device, workdir)),
        "speed_train": ("Speed: training step", lambda: speed.train_items(sizes, device)),
        "speed_eval": ("Speed: evaluation", lambda: speed.eval_items(sizes, device)),
        "profile": ("Where the time goes (torch.profiler)", lambda: profile.profile_items(sizes, device, out_dir)),
    }
    return [Section(n, makers[n][0], SHARES[n], child_setup(makers[n][1])) for n in names]


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    _setup_process(args.dry_run)
    os.makedirs(args.out, exist_ok=True)
    import torch  # noqa: F401 — imported, never initialised on CUDA, before the children fork

    from acceptance import report
    from acceptance.environment import host_facts
    from acceptance.runner import run_sections
    from acceptance.shapes import sizes as make_sizes

    started = time.time()
    device = torch.device("cpu" if args.dry_run else "cuda")
    sizes = make_sizes(args.dry_run)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, REPO), *(sys.argv[1:] if argv is None else argv)]),
        "dry_run": args.dry_run,
        "budget_s": args.budget_s,
        **host_facts(REPO),
    }
    print(f"gpu_acceptance: {meta['date']} commit {meta['commit'][:10]} torch {meta['torch']} triton {meta['triton']} "
          f"budget {args.budget_s:.0f} s{' DRY RUN' if args.dry_run else ''}", flush=True)  # fmt: skip
    workdir = tempfile.mkdtemp(prefix="gpu-acceptance-")
    sections = build_sections(args.sections, device, sizes, args.out, workdir, args.dry_run)

    def progress(result):
        counts = {}
        for item in result.items:
            counts[item["status"]] = counts.get(item["status"], 0) + 1
        print(f"  {result.name:<20} {result.seconds:6.1f} s of {result.slice_s:6.1f} s  {counts} {result.note}", flush=True)

    results = run_sections(sections, args.budget_s, workdir, on_done=progress)
    by_name = {r.name: r.to_dict() for r in results}
    from bench.test_relpos_attention import SHAPES

    full = report.targets(by_name, list(SHAPES[sizes.bench_size]), sizes.e2e["lengths"], sizes.e2e["eval_nodes"], args.dry_run)
    meta["seconds"] = round(time.time() - started, 1)
    device_items = by_name.get("environment", {}).get("items", [])
    meta.update({k: v for i in device_items if i.get("item") == "device" for k, v in i.items() if k not in ("item", "status", "seconds")})
    payload = {"meta": meta, "targets": full, "sections": [by_name[n] for n in args.sections]}
    report.write(os.path.join(args.out, "report.md"), os.path.join(args.out, "report.json"), payload)

    print("\ntargets:")
    for t in full:
        value = "–" if t["value"] is None else f"{t['value']:.3g}" if isinstance(t["value"], float) else t["value"]
        print(f"  {t['status']:<14.14} {value:>8}  {t['op']} {t['threshold']}  {t['target']}")
    bad = [f"{r.name}: {i['item']} ({i['status']})" for r in results for i in r.items
           if i["status"] in ("fail", "error", "crashed") or (r.name.startswith("correctness") and i["status"] == "timeout")]  # fmt: skip
    print(f"\nreport: {os.path.join(args.out, 'report.md')} ({meta['seconds']} s)")
    if bad:
        print("problems:\n  " + "\n  ".join(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
