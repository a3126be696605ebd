"""scripts/iteration_roles.py end to end on a briefly trained checkpoint."""

import importlib.util
import os

from fastrecur.config import load_config
from fastrecur.train import Trainer

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "scripts", "iteration_roles.py")


def test_prints_every_iteration_of_every_set(tmp_path, capsys):
    cfg = load_config("tiny", [f"train.out_dir={tmp_path}", "train.steps=2", "train.batch_size=4", "data.curriculum=[]"])
    trainer = Trainer(cfg, show_progress=False)
    trainer.fit()
    spec = importlib.util.spec_from_file_location("iteration_roles", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main([trainer.checkpoint_path, "--sizes", "8", "--num-graphs", "6"]) == 0
    out = capsys.readouterr().out
    roles, skills = out.split("in distribution (n = 4): solve accuracy by node kind")
    sets = roles.split("n = 8: ")
    assert len(sets) == 2 and "in distribution (n = 4)" in sets[0]
    for text in sets:
        rows = [line.split() for line in text.splitlines() if line.startswith("  ") and line.strip()[:1].isdigit()]
        assert [int(r[0]) for r in rows] == list(range(len(rows))) and len(rows) >= 3  # k = 0 … depth + 1
        assert "keep" in text and "solve" in text and "wait" in text
    # then one table per set of inner-node accuracy by kind and distance, each cell a percentage
    assert "n = 8: solve accuracy by node kind" in skills
    kind_rows = [line.split() for line in skills.splitlines() if line.strip().startswith(("copy", "kary"))]
    assert [r[0] for r in kind_rows] == ["copy", "kary", "copy", "kary"]
    for row in kind_rows:
        assert all(cell == "–" or 0.0 <= float(cell.rstrip("%")) <= 100.0 for cell in row[1:])
