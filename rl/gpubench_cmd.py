"""CLI registration for `nmlab gpu bench` (needs torch, so it lives in rl). Handlers import heavy modules lazily."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add subcommands to the nmlab parser."""
