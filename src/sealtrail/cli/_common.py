"""Pieces shared by the ``sealtrail`` and ``sealtrail-conformance`` entry points."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def usage_error(message: str) -> Exception:
    """A :class:`sealtrail.errors.UsageError` (exit 2), imported lazily to keep start-up light."""
    from sealtrail.errors import UsageError

    return UsageError(message)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with our exit code and a one-line error for usage mistakes."""

    def error(self, message: str) -> NoReturn:  # noqa: D102 - argparse API
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)
