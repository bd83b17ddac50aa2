"""GPU side of nmlab: the bench's shape grid and CSV schema, GPU design points, a timing model.

Kept import-light on purpose: ``grid``, ``schema`` and ``stats`` use only the standard
library, so the torch harness (``rl/gpubench.py``) can load them on a bare GPU machine that
has torch but no numpy. ``model``, ``spec`` and ``validate`` use numpy/scipy (never torch).
"""
