"""Drivers for peer tools that nmlab checks itself against (SCALE-Sim v3) or exports to (Timeloop)."""
