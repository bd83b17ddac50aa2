"""CLI registration for `nmlab crosscheck` and `nmlab export-timeloop`. Handlers import heavy modules lazily."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add subcommands to the nmlab parser."""
