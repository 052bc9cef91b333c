"""The one exception type for bad input and environment problems: :class:`UserError`.

Its message is one sentence naming the culprit and what to do; the command line prints it as one line
with exit status 2. Concrete types also derive from the built-in type callers catch (``ValueError``,
``OSError`` ...). Imports nothing from senet_lib.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """Bad input or an environment problem; the message is one sentence that says what to do."""
