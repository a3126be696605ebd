"""The targets of the kernel and fast-path work, judged from the sections' results, and the report
(``report.json``: everything; ``report.md``: the same as tables)."""

from __future__ import annotations

import json
import math
from typing import Optional

CORRECTNESS_SECTIONS = ("correctness_kernels", "correctness_e2e")
SPEED_NOTE_DRY = "n/a (dry run: interpreter timings mean nothing)"


def _item(sections: dict, section: str, name: str) -> Optional[dict]:
    for item in sections.get(section, {}).get("items", []):
        if item.get("item") == name and item.get("status") == "info":
            return item
    return None


def _ms(item: Optional[dict], pass_: Optional[str] = None) -> Optional[float]:
    if item is None:
        return None
    t = item.get("passes", {}).get(pass_, {}) if pass_ else item
    return t.get("median_ms")


def _ratio(num: Optional[float], den: Optional[float]) -> Optional[float]:
    return num / den if num is not None and den else None


def _target(name: str, value: Optional[float], op: str, threshold: float, dry_run: bool, unit: str = "×") -> dict:
    if dry_run:
        status = SPEED_NOTE_DRY
    elif value is None or (isinstance(value, float) and math.isnan(value)):
        status = "not measured"
    else:
        status = "pass" if (value >= threshold if op == ">=" else value <= threshold) else "fail"
    return {"target": name, "value": value, "op": op, "threshold": threshold, "unit": unit, "status": status}


def targets(sections: dict, attention_shapes: list[str], lengths: list[int], eval_nodes: int, dry_run: bool) -> list[dict]:
    out = []
    broken = [f"{s}: {i['item']} ({i['status']})" for s in CORRECTNESS_SECTIONS for i in sections.get(s, {}).get("items", [])
              if i.get("status") != "pass"]  # fmt: skip
    ran = any(sections.get(s, {}).get("items") for s in CORRECTNESS_SECTIONS)
    out.append({"target": "every correctness check passes", "value": len(broken), "op": "==", "threshold": 0, "unit": "failing",
                "status": ("pass" if not broken else "fail") if ran else "not measured", "details": broken})  # fmt: skip

    short, long = attention_shapes[0], attention_shapes[-1]
    attn = lambda shape, variant: _item(sections, "speed_attention", f"attention {shape} {variant}")  # noqa: E731
    for pass_ in ("fwd+bwd", "fwd"):
        fast = _ms(attn(short, "triton"), pass_)
        out.append(_target(f"attention {pass_} ≥ 2× FlexAttention with tables at {short}",
                           _ratio(_ms(attn(short, "flex"), pass_), fast), ">=", 2.0, dry_run))  # fmt: skip
    out.append(_target(f"attention fwd+bwd ≥ 5× compiled reference at {short}",
                       _ratio(_ms(attn(short, "compiled"), "fwd+bwd"), _ms(attn(short, "triton"), "fwd+bwd")), ">=", 5.0, dry_run))  # fmt: skip
    for pass_ in ("fwd+bwd", "fwd"):
        out.append(_target(f"attention {pass_} within 1.5× of plain causal SDPA at {long} (time ratio)",
                           _ratio(_ms(attn(long, "triton"), pass_), _ms(attn(long, "sdpa"), pass_)), "<=", 1.5, dry_run))  # fmt: skip

    from .speed import FUSED_OPS

    for op in FUSED_OPS:
        fast = _item(sections, "speed_fused_ops", f"{op} triton")
        floor_us = fast and (fast.get("floor_us_measured") or fast.get("floor_us_h100"))
        out.append(_target(f"{op} within 2× of its bandwidth floor", _ratio(_ms(fast), floor_us and floor_us / 1e3), "<=", 2.0, dry_run))
        compiled = _item(sections, "speed_fused_ops", f"{op} compiled")
        out.append(_target(f"{op} ≥ 2× faster than its compiled reference", _ratio(_ms(compiled), _ms(fast)), ">=", 2.0, dry_run))

    length = lengths[0]
    step = lambda v: _ms(_item(sections, "speed_train", f"train step L{length} {v}"))  # noqa: E731
    fast_steps = [t for t in (step("triton"), step("triton-compiled")) if t is not None]
    best = min(fast_steps) if fast_steps else None
    floor = _item(sections, "speed_train", f"train step L{length} triton") or {}
    out.append(_target(f"training step L = {length} ≤ 2× the docs/performance.md floor (best triton variant)",
                       _ratio(best, floor.get("floor_ms")), "<=", 2.0, dry_run))  # fmt: skip
    out.append(_target(f"training step L = {length} ≥ 10× the eager reference", _ratio(step("reference"), best), ">=", 10.0, dry_run))
    out.append(_target(f"training step L = {length} ≥ 3× the compiled reference", _ratio(step("reference-compiled"), best), ">=", 3.0, dry_run))

    ev = lambda v: _ms(_item(sections, "speed_eval", f"evaluation n={eval_nodes} {v}"))  # noqa: E731
    fast_evals = [t for t in (ev("triton"), ev("triton+cuda-graphs")) if t is not None]
    out.append(_target(f"evaluation n = {eval_nodes} ≥ 20× the eager reference (best triton variant)",
                       _ratio(ev("reference"), min(fast_evals) if fast_evals else None), ">=", 20.0, dry_run))  # fmt: skip
    return out


# --------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if math.isinf(x) or math.isnan(x):
            return str(x)
        return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:,.0f}"
    return str(x)


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _timing_cells(t: Optional[dict], rate: str) -> list:
    if not t:
        return ["–"] * 3
    if "skipped" in t:
        return [t["skipped"][:60], "–", "–"]
    return [t.get("median_ms"), t.get(rate), t.get("peak_mem_gib")]


def _section_md(section: dict) -> list[str]:
    name, items = section["name"], section["items"]
    lines = [f"## {section['title']}", "", f"Slice {section['slice_s']} s, used {section['seconds']} s. {section.get('note', '')}".rstrip(), ""]
    broken = [i for i in items if i.get("status") in ("error", "crashed", "timeout", "skipped")]
    if name.startswith("correctness"):
        rows = []
        for i in items:
            checks = i.get("checks", [])
            failing = [c["check"] for c in checks if not c.get("ok")]
            worst = max((c.get("rel_err", 0.0) / c["tol"] for c in checks if "rel_err" in c and isinstance(c.get("tol"), float) and c["tol"] > 0),
                        default=None)  # fmt: skip
            rows.append([i["item"], i["status"], i.get("seconds"), len(checks), worst, "; ".join(failing) or i.get("error", "")[:120]])
        lines += _table(["check", "status", "s", "checks", "worst error / tolerance", "failing"], rows)
    elif name == "speed_attention":
        rows = [[i["item"], *_timing_cells(i.get("passes", {}).get("fwd"), "tflops"), *_timing_cells(i.get("passes", {}).get("fwd+bwd"), "tflops")]
                for i in items if i.get("status") == "info"]  # fmt: skip
        lines += _table(["variant", "fwd ms", "fwd TFLOP/s", "fwd peak GiB", "fwd+bwd ms", "fwd+bwd TFLOP/s", "fwd+bwd peak GiB"], rows)
    elif name == "speed_fused_ops":
        rows = [[i["item"], i.get("skipped") or i.get("median_ms"), i.get("gbps"), i.get("floor_us_measured") or i.get("floor_us_h100"),
                 _ratio(i.get("median_ms"), (i.get("floor_us_measured") or i.get("floor_us_h100") or 0) / 1e3), i.get("peak_mem_gib")]
                for i in items if i.get("status") == "info"]  # fmt: skip
        lines += _table(["op", "ms", "GB/s", "floor µs", "× floor", "peak GiB"], rows)
    elif name == "speed_train":
        rows = [[i["item"], i.get("skipped") or i.get("median_ms"), i.get("x_floor"), i.get("tokens_per_s"), i.get("tflops"),
                 i.get("gbps"), i.get("peak_mem_gib")] for i in items if i.get("status") == "info"]  # fmt: skip
        lines += _table(["step", "ms", "× floor", "tokens/s", "model TFLOP/s¹", "GB/s¹", "peak GiB"], rows)
        lines += ["¹ from docs/performance.md §1–2: its count of the step's FLOPs and ideal bytes (not measured counters).", ""]
    elif name == "speed_eval":
        rows = [[i["item"], i.get("skipped") or i.get("median_ms"), i.get("graphs_per_s"), i.get("fully_solved"), i.get("peak_mem_gib")]
                for i in items if i.get("status") == "info"]  # fmt: skip
        lines += _table(["evaluation", "ms", "graphs/s", "fully solved", "peak GiB"], rows)
    elif name == "profile":
        for i in items:
            if i.get("status") != "info":
                continue
            lines += [f"Step: {_fmt(i['step_ms'])} ms ({i['time_kind']} time), kernels {_fmt(i['kernel_total_ms_per_step'])} ms per step. "
                      f"Trace: `{i.get('trace')}` ({i.get('trace_kept', '')}).", ""]  # fmt: skip
            lines += _table(["range", "calls/step", "device ms/step", "host ms/step", "share of step"],
                            [[r["name"], r["calls_per_step"], r["device_ms_per_step"], r["host_ms_per_step"], r["share_of_step"]] for r in i["ranges"]])  # fmt: skip
            lines += _table(["kernel", "calls/step", "ms/step", "share"],
                            [[k["name"], k["calls_per_step"], k["ms_per_step"], k["share"]] for k in i["kernels"]])  # fmt: skip
    else:
        for i in items:
            facts = {k: v for k, v in i.items() if k not in ("item", "status", "seconds")}
            lines.append(f"* **{i['item']}**: " + ", ".join(f"{k} = {_fmt(v)}" for k, v in facts.items()))
        lines.append("")
    for i in broken:
        lines.append(f"* {i['item']}: **{i['status']}** {i.get('error', i.get('note', ''))[:300]}")
    return lines + ([""] if broken else [])


def write(path_md: str, path_json: str, report: dict) -> None:
    with open(path_json, "w") as f:
        json.dump(report, f, indent=1, default=str)
    meta = report["meta"]
    lines = [f"# GPU acceptance report{' (DRY RUN: toy shapes, CPU interpreter)' if meta['dry_run'] else ''}", ""]
    lines += _table(["", ""], [[k, v] for k, v in meta.items() if k != "command"])
    lines += [f"Command: `{meta['command']}`", "", "## Targets", ""]
    lines += _table(["target", "value", "needs", "status"],
                    [[t["target"], t["value"], f"{t['op']} {t['threshold']} {t['unit']}", t["status"]] for t in report["targets"]])  # fmt: skip
    for section in report["sections"]:
        lines += _section_md(section)
    with open(path_md, "w") as f:
        f.write("\n".join(lines) + "\n")
