"""A restricted unpickler for CIFAR batch files, which are pickles from an untrusted folder.

A pickle can name any importable callable and call it while loading (``os.system`` included),
so :func:`load_cifar_pickle` never uses ``pickle.load``. Its unpickler resolves only the few
names that CIFAR files contain, from a fixed table, and refuses every other one *before*
anything is called:

* ``numpy.ndarray`` and ``numpy.dtype`` with numpy's array rebuilders
  (``numpy[._]core.multiarray._reconstruct`` for protocols 0-4, ``numpy[._]core.numeric._frombuffer``
  for protocol 5), which build the ``data`` array, and ``numpy[._]core.multiarray.scalar`` for
  numpy integers (labels of a re-pack made with ``list(array)``), numeric dtypes only;
* ``bytes`` as Python 3 stores it in protocol 0-2 pickles (the labels and file names of re-packed
  copies): ``_codecs.encode(text, "latin1")``, and ``__builtin__.bytes()`` / ``builtins.bytes()``
  with no argument for an empty value. These are guarded: another encoding or any argument to
  ``bytes`` is refused when the call is made, before anything runs.

The official files (Python 2, protocol 2) need the numpy names only; the JPEG copy written by
``shared/tools/cifar10_jpeg.py`` (Python 3, protocol 2) also needs ``_codecs.encode``.
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
    """``pickle.Unpickler`` that resolves only the names in :data:`_ALLOWED`.

    ``find_class`` runs when the pickle *names* a global, before any call made with it, so a
    refused name means no code from the file ran.
    """

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
