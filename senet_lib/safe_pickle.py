"""A restricted unpickler for CIFAR batch files, which are pickles from an untrusted folder.

A pickle can name any importable callable and call it while loading (``os.system`` included),
so :func:`load_cifar_pickle` never uses ``pickle.load``. Its unpickler resolves only the few
names that CIFAR files contain, from a fixed table, and refuses every other one *before*
anything is called:

* ``numpy.ndarray`` and ``numpy.dtype`` with numpy's array rebuilders
  (``numpy[._]core.multiarray._reconstruct`` for protocols 0-4, ``numpy[._]core.numeric._frombuffer``
  for protocol 5), which build the ``data`` array;
* ``_codecs.encode``, which Python 3 uses to store ``bytes`` in protocol 0-2 pickles (the
  labels and file names of re-packed copies).

The official files (Python 2, protocol 2) need the numpy names only; the JPEG copy written by
``shared/tools/cifar10_jpeg.py`` (Python 3, protocol 2) also needs ``_codecs.encode``.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CorruptFileError", "UnsafePickleError", "load_cifar_pickle", "CifarUnpickler"]


def _numpy_core_attr(module: str, name: str) -> Any:
    """``numpy._core.<module>.<name>`` on numpy 2, ``numpy.core.<module>.<name>`` on numpy 1."""
    core = getattr(np, "_core", None) or np.core
    return getattr(getattr(core, module), name)


#: (module, name) → the object it resolves to. Anything missing from this table is refused.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _numpy_core_attr("multiarray", "_reconstruct")
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _numpy_core_attr("numeric", "_frombuffer")


class UnsafePickleError(pickle.UnpicklingError):
    """The file references something that CIFAR files never contain; nothing was executed."""


class CorruptFileError(ValueError):
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
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.path}: refusing to load: it contains a reference to {module}.{name}, which "
                "CIFAR files never do; the file may be corrupt or malicious: delete it and download again."
            ) from None

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
