"""The ``nmlab`` command: a thin dispatcher.

Each package owns its subcommands in ``<package>/commands.py`` with a
``register(subparsers)`` function, found through the ``nmlab.commands`` entry-point group
(so this module never imports rl or torch by name). Handlers import their heavy modules
lazily, which keeps ``nmlab --help`` fast and torch-free.

User errors (:class:`~hwmodel.errors.NmlabError`) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from importlib.metadata import entry_points
from typing import Callable, Sequence

from hwmodel.errors import NmlabError

# Display order of the packages' commands; follows the data flow.
_PACKAGES = ("rl", "hwmodel", "sweeps", "reports")


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line (no usage dump) with exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


def subgroup(sub: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """Sub-subcommands under ``nmlab NAME`` that several packages may add to.

    ``nmlab gpu bench`` needs torch (rl) while ``nmlab gpu validate`` is pure hwmodel: each
    package calls ``subgroup(sub, "gpu", ...)`` and gets the same group.
    """
    groups = sub.__dict__.setdefault("_nmlab_groups", {})
    if name not in groups:
        parser = sub.add_parser(name, help=help)
        groups[name] = parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", parser_class=OneLineParser)
        parser.set_defaults(func=lambda args, p=parser: (p.print_help(), 2)[1])
    return groups[name]


def _registrars() -> list[tuple[str, Callable]]:
    found = {ep.name: ep for ep in entry_points(group="nmlab.commands")}
    names = [p for p in _PACKAGES if p in found] + sorted(set(found) - set(_PACKAGES))
    if names:
        return [(n, found[n].load()) for n in names]
    # Running from a source tree that was never installed: use the known packages.
    return [(p, importlib.import_module(f"{p}.commands").register) for p in _PACKAGES]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="nmlab",
        description="Co-design lab for N:M sparse RL agents and the accelerators that run them.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for _name, register in _registrars():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        # parse_known_args: an unknown option is reported below under the subcommand's name
        # (`nmlab report: error: ...`), not the top parser's bare `nmlab: error:`.
        args, extra = parser.parse_known_args(argv)
    except SystemExit as exc:  # --help (0) or a bad argument (2, its one line already printed)
        return exc.code if isinstance(exc.code, int) else 2
    # "nmlab gpu validate", not "nmlab gpu": the same name argparse's own errors use.
    name = " ".join(filter(None, (args.command, getattr(args, f"{args.command}_command", None))))
    if extra:
        print(f"nmlab{' ' + name if name else ''}: error: unrecognized arguments: {' '.join(extra)}",
              file=sys.stderr)
        return 2
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        status = int(func(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at exit
        return status
    except NmlabError as exc:
        print(f"nmlab {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        from hwmodel.stop import interrupt_status

        print(f"nmlab {name}: interrupted", file=sys.stderr)
        return interrupt_status()  # 130; 143 where SIGTERM stopped `nmlab train` / `campaign` / `sweep`
    except BrokenPipeError:
        # The reader went away (`nmlab workload | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
