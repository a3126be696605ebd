"""Metric logging for a run: JSON lines and CSV always, TensorBoard when it is installed.

``metrics.jsonl`` holds every record in full. ``metrics.csv`` has the columns of the first record
(later keys go to the JSONL file only), so it opens cleanly in a spreadsheet or pandas.
Files are appended to, so a resumed run continues the same logs.
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Optional


class RunLogger:
    def __init__(self, out_dir: str, *, tensorboard: bool = True, enabled: bool = True):
        self.enabled = enabled
        self.out_dir = out_dir
        self._csv_fields: Optional[list[str]] = None
        self._tb = None
        if not enabled:
            return
        os.makedirs(out_dir, exist_ok=True)
        self.jsonl_path = os.path.join(out_dir, "metrics.jsonl")
        self.csv_path = os.path.join(out_dir, "metrics.csv")
        if os.path.exists(self.csv_path):
            with open(self.csv_path, newline="") as f:
                header = next(csv.reader(f), None)
            self._csv_fields = header or None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is an optional extra
                SummaryWriter = None
            if SummaryWriter is not None:
                self._tb = SummaryWriter(os.path.join(out_dir, "tensorboard"))

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps({k: _json_safe(v) for k, v in record.items()}) + "\n")
        if self._csv_fields is None:
            self._csv_fields = list(record)
            with open(self.csv_path, "w", newline="") as f:
                csv.writer(f).writerow(self._csv_fields)
        with open(self.csv_path, "a", newline="") as f:
            csv.writer(f).writerow([record.get(k, "") for k in self._csv_fields])
        if self._tb is not None and "step" in record:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _json_safe(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
