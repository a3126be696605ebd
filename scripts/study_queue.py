#!/usr/bin/env python
"""Run the learning-study runs listed in a queue file, a few at a time, skipping finished ones.

Each line of the queue is ``NAME<TAB>ARGS`` (ARGS as for scripts/study.py, shell-quoted; ``#``
starts a comment). Run NAME trains into ``ROOT/NAME`` and logs to ``ROOT/NAME/stdout.log``. Runs
are resumable, so after an interruption the same command continues where each run stopped.

    python scripts/study_queue.py docs/study/queue.tsv --root runs/study --parallel 2
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time


def read_queue(path: str) -> list[tuple[str, list[str]]]:
    runs = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, _, args = line.partition("\t")
            runs.append((name.strip(), shlex.split(args)))
    return runs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("queue")
    p.add_argument("--root", default="runs/study")
    p.add_argument("--parallel", type=int, default=2)
    args = p.parse_args(argv)
    study = os.path.join(os.path.dirname(os.path.abspath(__file__)), "study.py")
    pending = [(n, a) for n, a in read_queue(args.queue) if not os.path.isfile(os.path.join(args.root, n, "done"))]
    running: dict[str, subprocess.Popen] = {}
    failed = []
    while pending or running:
        while pending and len(running) < args.parallel:
            name, run_args = pending.pop(0)
            out = os.path.join(args.root, name)
            os.makedirs(out, exist_ok=True)
            log = open(os.path.join(out, "stdout.log"), "a")
            running[name] = subprocess.Popen([sys.executable, study, "--out", out, *run_args], stdout=log, stderr=subprocess.STDOUT)
            print(f"started {name}", flush=True)
        time.sleep(5)
        for name, proc in list(running.items()):
            if proc.poll() is not None:
                del running[name]
                print(f"finished {name} (exit {proc.returncode})", flush=True)
                if proc.returncode:
                    failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)} (see their stdout.log)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
