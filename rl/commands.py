"""Subcommands owned by rl. Handlers import torch and their modules lazily."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from rl import campaign, gpubench_cmd, train_cmd

    train_cmd.register(sub)
    campaign.register(sub)
    gpubench_cmd.register(sub)
