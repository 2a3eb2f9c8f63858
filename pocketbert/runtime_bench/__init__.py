"""The latency harness: every artifact and the full-BERT baseline, measured in one run on the same inputs.

Modules: :mod:`inputs` (feeds of exact token lengths from real texts), :mod:`specs` (picklable runner
descriptions), :mod:`worker` (one subprocess per runner, threads pinned), :mod:`schedule` (round-robin timing
across workers), :mod:`stats` (medians, percentiles, bootstrap intervals, paired ratios), :mod:`fidelity`
(agreement with BERT), :mod:`machine` (CPU and library versions), :mod:`report` (JSON, Markdown, PNG),
:mod:`rules` (``--check`` ratio gates) and :mod:`bench` (the orchestration).
"""
