"""scripts/gpu_acceptance.py: the section runner's isolation, and the whole script as a dry run.

The dry run executes every section at toy shapes on the CPU (Triton interpreter, ``torch.compile``
through ``aot_eager``), so the script cannot rot between the rare runs on a lent GPU.
"""

import json
import os
import subprocess
import sys
import time

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "scripts"))

from acceptance.runner import Item, Section, run_section, run_sections  # noqa: E402


def _crash():
    os._exit(7)


def _cuda_error():
    raise RuntimeError("CUDA error: an illegal memory access was encountered")


def _raise():
    raise ValueError("broken check")


def _hang():
    time.sleep(60)


def _section(name, *steps, share=1.0):
    items = lambda: [Item(f"{name}-{i}", (lambda f=f: f() or {"status": "pass"}) if callable(f) else (lambda: {"status": f}))  # noqa: E731
                     for i, f in enumerate(steps)]  # fmt: skip
    return Section(name, name, share, items)


def test_a_failing_item_costs_only_itself(tmp_path):
    """An exception, a dead process and a CUDA error each cost one item; the items after them run
    (a fresh child after the crash and after the CUDA error, whose context would be unusable)."""
    pid_file = tmp_path / "pids"

    def record_pid():
        with open(pid_file, "a") as f:
            f.write(f"{os.getpid()}\n")
        return {"status": "pass"}

    section = _section("s", record_pid, _raise, record_pid, _crash, record_pid, _cuda_error, record_pid, "fail")
    result = run_section(section, 30.0, str(tmp_path))
    statuses = [i["status"] for i in result.items]
    assert statuses == ["pass", "error", "pass", "crashed", "pass", "error", "pass", "fail"]
    assert "broken check" in result.items[1]["error"] and "exit code 7" in result.items[3]["error"]
    pids = pid_file.read_text().split()
    assert len(set(pids)) == 3  # one child before the crash, one after it, one after the CUDA error
    assert str(os.getpid()) not in pids


def test_a_hang_is_cut_at_the_slice_and_later_sections_still_run(tmp_path):
    began = time.time()
    results = run_sections([_section("slow", "pass", _hang, "pass", share=1.0), _section("next", "pass", share=1.0)], 4.0, str(tmp_path))
    assert time.time() - began < 15
    assert [i["status"] for i in results[0].items] == ["pass", "timeout", "skipped"]
    assert [i["status"] for i in results[1].items] == ["pass"]
    assert results[0].slice_s == pytest.approx(2.0, abs=0.5)  # half the budget: equal shares


def test_a_section_that_cannot_start_is_reported(tmp_path):
    def broken():
        raise ImportError("no such module")

    result = run_section(Section("broken", "broken", 1.0, broken), 10.0, str(tmp_path))
    assert result.items[0]["status"] == "error" and "no such module" in result.note


@pytest.mark.slow
def test_dry_run_runs_every_section(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "scripts/gpu_acceptance.py", "--dry-run", "--out", str(out), "--budget-s", "1200"],
        cwd=REPO, capture_output=True, text=True, timeout=1500,
        env={k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads((out / "report.json").read_text())
    names = [s["name"] for s in report["sections"]]
    assert names == ["environment", "correctness_kernels", "correctness_e2e", "speed_attention", "speed_fused_ops",
                     "speed_train", "speed_eval", "profile"]  # fmt: skip
    for section in report["sections"]:
        assert section["items"], section["name"]
        for item in section["items"]:
            allowed = {"pass"} if section["name"].startswith("correctness") else {"info", "skipped"}
            assert item["status"] in allowed, (section["name"], item)
            if item["status"] == "skipped":  # only what needs a GPU
                assert "GPU" in item.get("note", ""), item
    targets = {t["target"]: t for t in report["targets"]}
    assert targets["every correctness check passes"]["status"] == "pass"
    assert all(t["status"].startswith("n/a") for name, t in targets.items() if name != "every correctness check passes")
    # What a device run brings back: at most 8 files of at most 16 MiB, no deeper than two folders.
    files = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs]
    assert sorted(os.path.basename(f) for f in files) == ["report.json", "report.md", "trace.json.gz"]
    assert all(os.path.getsize(f) < 16 * 2**20 for f in files)
    md = (out / "report.md").read_text()
    assert "## Targets" in md and "Where the time goes" in md and "| kernel |" in md
