"""A restricted unpickler for CIFAR batch files, which are pickles from an untrusted folder.

It resolves only the names CIFAR files contain (numpy's array and scalar rebuilders with numeric
dtypes, ``_codecs.encode(text, "latin1")`` and argument-free ``bytes()``) and refuses every other one
before anything is called.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError

__all__ = ["CorruptFileError", "UnsafePickleError", "load_cifar_pickle", "CifarUnpickler"]


def _numpy_core_attr(module: str, name: str) -> Any:
    """``numpy._core.<module>.<name>`` on numpy 2, ``numpy.core.<module>.<name>`` on numpy 1."""
    core = getattr(np, "_core", None) or np.core
    return getattr(getattr(core, module), name)


#: (module, name) → the object it resolves to. Anything missing from this table is refused.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _numpy_core_attr("multiarray", "_reconstruct")
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _numpy_core_attr("numeric", "_frombuffer")

#: (module, name) → the name of a :class:`CifarUnpickler` method that checks the call's arguments.
_GUARDED: dict[tuple[str, str], str] = {
    ("_codecs", "encode"): "_encode",
    ("__builtin__", "bytes"): "_bytes",
    ("builtins", "bytes"): "_bytes",
    ("numpy.core.multiarray", "scalar"): "_scalar",
    ("numpy._core.multiarray", "scalar"): "_scalar",
}
_numpy_scalar = _numpy_core_attr("multiarray", "scalar")


class UnsafePickleError(pickle.UnpicklingError, UserError):
    """The file references something that CIFAR files never contain; nothing was executed."""


class CorruptFileError(ValueError, UserError):
    """The file is truncated, not a pickle, or not shaped like a CIFAR file."""


class CifarUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` resolving only :data:`_ALLOWED`; a refused name means no code from the file ran."""

    def __init__(self, file: Any, path: Path | str = "<stream>") -> None:
        # latin1 is the encoding numpy needs for arrays pickled by Python 2 (the official files).
        super().__init__(file, encoding="latin1")
        self.path = Path(path)

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if (module, name) in _GUARDED:
            return getattr(self, _GUARDED[(module, name)])
        raise self._refuse(f"a reference to {module}.{name}")

    def _refuse(self, what: str) -> UnsafePickleError:
        return UnsafePickleError(
            f"{self.path}: refusing to load: it contains {what}, which CIFAR files never do; "
            "the file may be corrupt or malicious: delete it and download again."
        )

    # The guards below stand in for the callables a pickle names; they run instead of them.
    def _encode(self, text: Any, encoding: Any = "utf-8", *rest: Any) -> bytes:
        """``_codecs.encode(text, "latin1")``, which is how Python 3 pickles ``bytes`` at protocol 0-2."""
        if rest or not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise self._refuse(f"a call of _codecs.encode with encoding {encoding!r}")
        return text.encode("latin1")

    def _bytes(self, *args: Any) -> bytes:
        """``bytes()`` without arguments: how Python 3 pickles an empty ``bytes`` at protocol 0-2."""
        if args:
            raise self._refuse("a call of bytes with arguments")
        return b""

    def _scalar(self, dtype: Any, *args: Any) -> Any:
        """numpy's scalar rebuilder, for numeric dtypes only (an object dtype could hold anything)."""
        if not isinstance(dtype, np.dtype) or dtype.kind not in "biuf":
            raise self._refuse(f"a numpy scalar of dtype {dtype!r}")
        return _numpy_scalar(dtype, *args)

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(
            f"{self.path}: refusing to load: it contains a persistent reference, which CIFAR files "
            "never do; the file may be corrupt or malicious: delete it and download again."
        )


def load_cifar_pickle(path: Path | str) -> Any:
    """Unpickle one CIFAR file with :class:`CifarUnpickler`.

    Raises:
        UnsafePickleError: the file names a callable outside the CIFAR whitelist (nothing ran).
        CorruptFileError: the file is truncated or is not a pickle.
    """
    path = Path(path)
    with path.open("rb") as fh:
        try:
            return CifarUnpickler(fh, path).load()
        except UnsafePickleError:
            raise
        except Exception as err:  # truncated or garbled pickles raise many exception types
            raise CorruptFileError(
                f"{path} is truncated or corrupt ({type(err).__name__}: {err}): delete it and download again."
            ) from err
