"""Pieces shared by the ``sealtrail`` and ``sealtrail-conformance`` entry points."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

# The exit statuses (README "Exit status"). A command that ends with an error exits with
# that error's class attribute `exit_code` (sealtrail.errors: 1 verification failed, 2 usage
# or input, 3 a service failed); these names are for the commands' own returns.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SERVICE = 3


def usage_error(message: str) -> Exception:
    """A :class:`sealtrail.errors.UsageError` (exit 2), imported lazily to keep start-up light."""
    from sealtrail.errors import UsageError

    return UsageError(message)


@functools.cache
def terminal_columns() -> int:
    """The terminal's width, as ``shutil.get_terminal_size`` gives it ($COLUMNS, else the
    terminal of stdout, else 80), found once per process.

    argparse makes a help formatter for every argument it defines (to check its metavar),
    and each one imports shutil (which imports bz2, lzma and zlib) and asks the terminal:
    about 2.5 ms of every start-up, spent before any command runs."""
    import os

    columns = 0
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        pass
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, sized by :func:`terminal_columns` (the same width)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        # argparse's own default: the terminal width less a margin of 2.
        super().__init__(prog, indent_increment, max_help_position,
                         terminal_columns() - 2 if width is None else width)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with our exit code, a one-line error for usage mistakes, and a help
    formatter that does not cost start-up time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:  # noqa: D102 - argparse API
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (its first word that is not an option), if any.

    Only top-level flags without values (``--version``, ``--help``) may come before it."""
    return next((word for word in argv if not word.startswith("-")), None)


class _Unused:
    """Stands in for the parser of a command that is not being run: what would define its
    arguments does nothing (argparse costs ~40 µs per argument, most of it in gettext
    look-ups, and start-up time is what every command pays)."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        return None

    def add_mutually_exclusive_group(self, *args: Any, **kwargs: Any) -> "_Unused":
        return self

    add_argument_group = add_mutually_exclusive_group

    def add_subparsers(self, *args: Any, **kwargs: Any) -> "_Unused":
        return self

    def add_parser(self, *args: Any, **kwargs: Any) -> "_Unused":
        return self

    def set_defaults(self, **kwargs: Any) -> None:
        return None


class Commands:
    """The subcommands of a parser, fully defined only for ``wanted`` (all when None).

    Every command is still registered with its name and help line, so ``--help`` lists them
    all and argparse refuses an unknown one as before."""

    def __init__(self, action: Any, wanted: str | None) -> None:
        self._action = action
        self._wanted = wanted

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        parser = self._action.add_parser(name, **kwargs)
        return parser if self._wanted in (None, name) else _Unused()
