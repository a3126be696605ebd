"""Run sections of checks in child processes, each within its own slice of a time budget.

A *section* is a named list of *items* (one check or one measurement each). The parent forks one
child per section; the child runs the items in order and appends one JSON line per event to a
journal file. The parent only reads journals, so whatever happens in a child — an exception, an
illegal memory access that leaves its CUDA context unusable, a hang, a segfault — costs at most the
item in flight:

* an item that raises is recorded as ``error`` and the child goes on; if the exception is a CUDA
  error the child exits (its context is dead) and the parent forks a fresh child for the next item;
* a child that dies (signal, ``os._exit``) has its item in flight recorded as ``crashed``, and a
  fresh child continues with the next item;
* a child still running when the section's slice ends is killed: its item in flight is ``timeout``,
  the items after it ``skipped``.

Slices: each section has a ``share``; when it starts it gets ``share / (shares of it and the
sections after it) × time left``, so time a section does not use goes to the ones after it.

This module imports neither torch nor CUDA: the parent must not create a CUDA context before it
forks (a forked child cannot use a context its parent created).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

CUDA_ERROR_EXIT = 3  # a child's exit code after a CUDA error: its context is unusable
_deadline = float("inf")  # in a child: when its section's slice ends


def time_left() -> float:
    """Seconds until the running section's slice ends (items use it to shorten or skip work)."""
    return _deadline - time.time()


@dataclass
class Item:
    name: str
    run: Callable[[], dict]  # returns {"status": "pass"|"fail"|"info"|"skipped", ...}


@dataclass
class Section:
    name: str
    title: str
    share: float
    make_items: Callable[[], list[Item]]  # called in the child, after the fork


@dataclass
class SectionResult:
    name: str
    title: str
    slice_s: float
    seconds: float = 0.0
    items: list[dict] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "slice_s": round(self.slice_s, 1),
                "seconds": round(self.seconds, 1), "note": self.note, "items": self.items}  # fmt: skip


def is_cuda_error(exc: BaseException) -> bool:
    """True for errors after which the process's CUDA context cannot be trusted."""
    text = f"{type(exc).__name__}: {exc}"
    return "CUDA error" in text or "AcceleratorError" in text or "illegal memory access" in text


def _journal(path: str, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record, default=str) + "\n")
        f.flush()


def _child_main(section: Section, start: int, journal: str, deadline: float) -> None:
    """Runs in the forked child: items ``start …`` of ``section``; exits when done or on a CUDA error."""
    global _deadline
    _deadline = deadline
    try:
        items = section.make_items()
    except BaseException as exc:  # noqa: BLE001 — reported, never raised past the child
        _journal(journal, {"event": "setup_error", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
        os._exit(1)
    _journal(journal, {"event": "plan", "items": [item.name for item in items]})
    for index in range(start, len(items)):
        item = items[index]
        if time.time() >= deadline:
            break
        _journal(journal, {"event": "start", "index": index, "item": item.name})
        began = time.time()
        exit_code = None
        try:
            result = item.run()
        except BaseException as exc:  # noqa: BLE001 — pytest.skip raises a BaseException too
            if isinstance(exc, KeyboardInterrupt):
                raise
            result = {"status": "error", "error": f"{type(exc).__name__}: {str(exc)[:2000]}",
                      "traceback": traceback.format_exc()[-4000:]}  # fmt: skip
            if is_cuda_error(exc):
                exit_code = CUDA_ERROR_EXIT
        result.setdefault("status", "info")
        _journal(journal, {"event": "end", "index": index, "item": item.name, "seconds": round(time.time() - began, 2), **result})
        if exit_code is not None:
            os._exit(exit_code)
    _journal(journal, {"event": "done"})
    os._exit(0)


def _read_journal(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill
                pass
    return records


def run_section(section: Section, slice_s: float, workdir: str, poll_s: float = 0.05) -> SectionResult:
    """Run every item of ``section`` in forked children within ``slice_s`` seconds."""
    result = SectionResult(section.name, section.title, slice_s)
    began = time.time()
    deadline = began + slice_s
    journal = os.path.join(workdir, f"{section.name}.jsonl")
    context = multiprocessing.get_context("fork")
    plan: Optional[list[str]] = None
    done: dict[int, dict] = {}
    start = 0
    while True:
        child = context.Process(target=_child_main, args=(section, start, journal, deadline), daemon=True)
        child.start()
        while child.is_alive() and time.time() < deadline:
            child.join(poll_s)
        timed_out = child.is_alive()
        if timed_out:
            child.kill()
            child.join()
        records = _read_journal(journal)
        setup_errors = [r for r in records if r["event"] == "setup_error"]
        if setup_errors and plan is None:
            result.note = f"section setup failed: {setup_errors[-1]['error']}"
            result.items.append({"item": "(setup)", "status": "error", **setup_errors[-1]})
            break
        for record in records:
            if record["event"] == "plan":
                plan = record["items"]
            elif record["event"] == "end":
                done[record["index"]] = {k: v for k, v in record.items() if k not in ("event", "index")}
        started = [r["index"] for r in records if r["event"] == "start" and r["index"] not in done]
        if started:  # the child stopped inside this item
            index = started[-1]
            if timed_out:
                status, why = "timeout", f"killed when the section's {slice_s:.0f} s slice ran out"
            else:
                status, why = "crashed", f"the child process died (exit code {child.exitcode})"
            done[index] = {"item": plan[index] if plan else f"#{index}", "status": status, "error": why}
            start = index + 1
        else:
            start = max(done, default=-1) + 1
        finished = any(r["event"] == "done" for r in records)
        if finished or timed_out or plan is None or start >= len(plan) or time.time() >= deadline:
            break
        os.remove(journal)  # the next child appends afresh; results so far are in `done`
    for index, name in enumerate(plan or []):
        if index not in done:
            done[index] = {"item": name, "status": "skipped", "note": "the section's time slice ran out first"}
    result.items.extend(done[i] for i in sorted(done))
    result.seconds = time.time() - began
    return result


def run_sections(sections: list[Section], budget_s: float, workdir: str, on_done: Optional[Callable[[SectionResult], Any]] = None) -> list[SectionResult]:
    """Run the sections in order; each gets its share of the time that is left when it starts."""
    end = time.time() + budget_s
    results = []
    for i, section in enumerate(sections):
        left = end - time.time()
        shares = sum(s.share for s in sections[i:])
        slice_s = left * section.share / shares if shares > 0 else 0.0
        if slice_s < 1.0:
            result = SectionResult(section.name, section.title, max(slice_s, 0.0), note="skipped: the time budget ran out")
        else:
            result = run_section(section, slice_s, workdir)
        results.append(result)
        if on_done is not None:
            on_done(result)
    return results
