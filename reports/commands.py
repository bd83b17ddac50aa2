"""Subcommands owned by reports. Handlers import their modules lazily."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this package's subcommands to the nmlab parser."""
