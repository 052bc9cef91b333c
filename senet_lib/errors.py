"""The one exception type for bad input and environment problems: :class:`UserError`.

Every error that a user (not a bug) causes derives from it: an invalid recipe value, a corrupt or
foreign checkpoint, a crafted CIFAR pickle, a run folder in use by another run, a folder that
cannot be written, a full disk. Its message is one sentence that names the culprit and says what
to do, so that notebooks can show it as it is and the command line prints it as one line with
exit status 2 (:func:`senet_lib.cli.main`).

The concrete types also derive from the built-in type their callers used to catch
(``ValueError``, ``OSError``, ``FileExistsError``, ``pickle.UnpicklingError``), so existing
``except`` clauses keep working.

This module imports nothing from senet_lib, so that every module may import it.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """Bad input or an environment problem; the message is one sentence that says what to do."""
