"""The parts of ``scripts/gpu_acceptance.py``: a time-sliced, crash-isolated section runner
(``runner``), measures (``measure``), the sections (``correctness``, ``speed``, ``profile``),
the shapes (``shapes``) and the report with its targets (``report``)."""
