"""The errors kb reports to its users.

Every shell (CLI, page, API, eval) catches `KbError` and shows its message as one line: the
message names the file, field or setting at fault and what to do about it. Anything else that
escapes is a bug, reported as one line plus a log entry, never as a traceback to the user.
"""

from __future__ import annotations


class KbError(Exception):
    """A problem the user can act on; the message says what went wrong and how to fix it."""


class ConfigError(KbError):
    """A setting (a `KB_*` variable or `.env` line) has a value kb cannot use."""


class ModelError(KbError):
    """A model is missing, corrupt, misconfigured or its server cannot be reached."""


class StoreError(KbError):
    """The knowledge base cannot be used as asked (no such collection, unreachable server…)."""


class InputError(KbError, ValueError):
    """Input given to kb is malformed: an empty question, a bad line in a question file."""


class QuestionTooLong(InputError):
    """The question (with its conversation) leaves no room for sources in the context."""


class UnsafeName(InputError):
    """An uploaded file's name leaves nothing usable once sanitised."""


class AccessDenied(KbError):
    """The reader may not do this (an upload without the right, an administrator's task)."""
