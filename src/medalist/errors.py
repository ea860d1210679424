"""User-facing errors: one clear line, no traceback."""

from __future__ import annotations


class MedalistError(Exception):
    """An error the user can act on; the CLI prints its message on one line and exits with 2."""


class InputError(MedalistError):
    """The competition folder or a flag is unusable as given."""


class CheckError(MedalistError):
    """A stage's artifact failed its check; the message says what is wrong and how to fix it."""


class BudgetExceeded(MedalistError):
    """A time, token or cost budget ran out; work done so far is kept."""
