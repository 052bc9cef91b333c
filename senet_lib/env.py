"""Where the code runs: platform, device and its training precision, folders, profile and seeding.

Environment variables override every choice: ``SENET_DEVICE`` (cuda, cuda:N, mps, cpu), ``SENET_PRECISION``
(bf16, fp16, fp32), ``SENET_PROFILE``, and the folders ``SENET_DATA_DIR``, ``SENET_CHECKPOINT_DIR``,
``SENET_FIGURES_DIR`` (in a checkout default build/figures; ``committed``: figures/) and ``SENET_RESULTS_DIR``.
"""

from __future__ import annotations

import os

# Must be set before torch is imported anywhere: lets ops that MPS lacks fall back to the CPU.
os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")

import json  # noqa: E402
import platform as _platform  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from .errors import UserError  # noqa: E402

PROFILES = ("quick", "class", "cpu", "gpu", "he2016", "step")
#: Old profile names and what they are called now (``paper`` was a public CIFAR repository's recipe, not the paper's).
RENAMED_PROFILES = {"paper": "step"}

#: The repository root when senet_lib is used from a checkout (``pip install -e .``), else None.
REPO_ROOT: Path | None = (
    Path(__file__).resolve().parents[1]
    if (Path(__file__).resolve().parents[1] / "pyproject.toml").is_file()
    else None
)


# --------------------------------------------------------------------------- platform
def detect_platform() -> str:
    """Return ``"kaggle"``, ``"colab"`` or ``"local"``."""
    if os.environ.get("KAGGLE_KERNEL_RUN_TYPE") or Path("/kaggle/working").is_dir():
        return "kaggle"
    if "google.colab" in sys.modules or os.environ.get("COLAB_RELEASE_TAG"):
        return "colab"
    return "local"


# --------------------------------------------------------------------------- device
def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def get_device(name: str | None = None) -> torch.device:
    """Pick the device: ``name``, else ``$SENET_DEVICE``, else cuda → mps → cpu.

    Raises:
        ValueError: the requested device does not exist here (the message says which do).
    """
    from_env = not name and bool(os.environ.get("SENET_DEVICE"))
    name = name or os.environ.get("SENET_DEVICE") or None
    if name is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(
            f"Unknown device {name!r}"
            + (" in SENET_DEVICE" if from_env else "")
            + ": use one of cuda, cuda:N, mps, cpu."
        ) from err
    available = (
        ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (["mps"] if _mps_available() else [])
    )
    if device.type not in available or (
        device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count()
    ):
        raise ValueError(
            f"Device {name!r} is not available on this machine (available: {', '.join(available)}): "
            + ("unset SENET_DEVICE or set it to one of those." if from_env else "choose one of those.")
        )
    return device


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in Linux ``/proc/cpuinfo`` (keys lower-case), ``{}`` where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():  # the first processor's block is enough
            break
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), " ".join(value.split()))
    return fields


def cpu_model() -> str | None:
    """The CPU's model name (Linux ``/proc/cpuinfo``, else ``platform.processor()``), or None."""
    return _cpuinfo().get("model name") or _platform.processor() or None


def cpu_id() -> str | None:
    """The CPU's vendor, family, model and stepping from Linux ``/proc/cpuinfo``, or None elsewhere
    (tells apart CPUs that a virtual machine names alike)."""
    fields = _cpuinfo()
    if "cpu family" not in fields or "model" not in fields:
        return None
    parts = [fields.get("vendor_id", ""), f"family {fields['cpu family']}", f"model {fields['model']}"]
    if fields.get("stepping"):
        parts.append(f"stepping {fields['stepping']}")
    return " ".join(x for x in parts if x)


def device_name(device: torch.device) -> str:
    """A human-readable name of the device (GPU model, or the CPU's architecture, model and core count)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple MPS ({_platform.machine()})"
    model = cpu_model()
    return (
        f"CPU {_platform.machine()}{f' {model}' if model else ''} "
        f"({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    )


def synchronize(device: torch.device | str) -> None:
    """Wait until all queued work on ``device`` has finished (a no-op on the CPU); read clocks after it."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# --------------------------------------------------------------------------- profile
def get_profile(name: str | None = None, device: torch.device | None = None) -> str:
    """The run profile: ``name``, else ``$SENET_PROFILE``, else quick on CPU and class on a GPU."""
    name = name or os.environ.get("SENET_PROFILE") or None
    if name is None:
        device = device or get_device()
        name = "quick" if device.type == "cpu" else "class"
    if name in RENAMED_PROFILES:
        raise ValueError(
            f"The profile {name!r} is now called {RENAMED_PROFILES[name]!r} (a public SE-ResNet-50 CIFAR repository's step recipe, "
            f"not the SE paper's): use {RENAMED_PROFILES[name]!r}."
        )
    if name not in PROFILES:
        raise ValueError(f"Unknown profile {name!r}: use one of {', '.join(PROFILES)} (SENET_PROFILE).")
    return name


# --------------------------------------------------------------------------- seeding, provenance
def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices). ``deterministic`` also asks cuDNN for
    deterministic kernels (slower)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def git_commit(short: bool = False) -> str:
    """The checkout's commit (``+dirty`` when there are uncommitted changes); where git cannot tell (a copy
    with no ``.git``, such as a tree copied without its history) ``$SENET_COMMIT``, else ``"unknown"``."""
    fallback = os.environ.get("SENET_COMMIT") or "unknown"
    if REPO_ROOT is None:
        return fallback
    try:
        args = ["git", "-C", str(REPO_ROOT), "rev-parse"] + (["--short"] if short else []) + ["HEAD"]
        commit = subprocess.run(args, capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return fallback
    return commit + ("+dirty" if dirty else "")


def allocator() -> dict[str, Any]:
    """A preloaded allocator (jemalloc, tcmalloc) and glibc's ``MALLOC_*_`` tunings: they can change CPU speed."""
    preload = [Path(p).name for p in os.environ.get("LD_PRELOAD", "").replace(":", " ").split() if p]
    tunings = {k: v for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_") and k.endswith("_")}
    return {"ld_preload": preload, "malloc_env": tunings}


def environment_record(
    device: torch.device, precision_name: str, profile: str | None = None, precision_reason: str | None = None
) -> dict:
    """Where code runs, as plain values: the one shape of run records, benchmark records and provenance."""
    device = torch.device(device)
    return {
        "platform": detect_platform(),
        "os": _platform.platform(),
        "device": str(device),
        "device_name": device_name(device),
        "precision": precision_name,
        "precision_reason": precision_reason,
        "cpu_bf16_units": cpu_bf16_units() if device.type == "cpu" else None,
        "cpu_vector_isa": cpu_vector_isa() if device.type == "cpu" else None,
        "cpu_id": cpu_id() if device.type == "cpu" else None,
        "torch_threads": torch.get_num_threads(),
        "allocator": allocator() if device.type == "cpu" else None,
        "profile": profile,
        "python": _platform.python_version(),
        "torch": torch.__version__,
        "commit": git_commit(),
    }


# --------------------------------------------------------------------------- one-call summary
@dataclass(frozen=True)
class Environment:
    """Everything a notebook's setup cell needs to know, from :func:`setup`."""

    platform: str
    device: torch.device
    device_name: str
    precision: Precision
    profile: str
    paths: Paths
    python: str
    torch_version: str
    commit: str

    def record(self) -> dict:
        """Plain-value description, for provenance files and result records."""
        return environment_record(self.device, self.precision.name, self.profile, self.precision.reason)

    def rows(self) -> list[tuple[str, str]]:
        """The summary as (label, value) rows."""
        return [
            ("platform", self.platform),
            ("device", f"{self.device} — {self.device_name}"),
            (
                "precision",
                self.precision.name
                + (" + GradScaler" if self.precision.use_grad_scaler else "")
                + (f" ({self.precision.reason})" if self.precision.reason else ""),
            ),
            ("profile", self.profile),
            ("python / torch", f"{self.python} / {self.torch_version}"),
            ("commit", self.commit),
            ("data", str(self.paths.data)),
            ("checkpoints", str(self.paths.checkpoints)),
            ("figures", str(self.paths.figures)),
            ("results", str(self.paths.results)),
        ]

    def check(self, seed: int = 0) -> str:
        """Check that the device computes matrix products right (plain and autocast) and every folder
        accepts a new file; say so in a few lines.

        Raises:
            UserError: one sentence naming what failed and what to do.
        """
        a = torch.randn(64, 64, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        reference = a @ a.T
        on_device = a.float().to(self.device)
        plain = (on_device @ on_device.T).cpu().double()
        with self.precision.autocast(self.device):
            low = on_device @ on_device.T
        expected = self.precision.dtype or torch.float32
        gaps = (float((plain - reference).abs().max()), float((low.double().cpu() - reference).abs().max()))
        if gaps[0] > 1e-3 + 1e-4 * float(reference.abs().max()):
            raise UserError(
                f"{self.device} multiplies float32 matrices {gaps[0]:.2g} away from the CPU's float64 result: "
                "update its driver and torch, or set SENET_DEVICE=cpu."
            )
        if low.dtype != expected or gaps[1] > 0.5 + 0.05 * float(reference.abs().max()):
            raise UserError(
                f"{self.precision.name} on {self.device} gave {low.dtype} results {gaps[1]:.2g} away from float64: "
                "set SENET_PRECISION=fp32."
            )
        rows = [
            (
                "arithmetic",
                f"{self.device}: fp32 within {gaps[0]:.1e}, {self.precision.name} within {gaps[1]:.1e}",
            )
        ]
        for what, folder in (
            ("data", self.paths.data),
            ("checkpoints", self.paths.checkpoints),
            ("figures", self.paths.figures),
            ("results", self.paths.results),
        ):
            try:
                with tempfile.NamedTemporaryFile(dir=folder) as probe:
                    probe.write(b"ok")
                    probe.flush()
            except OSError as err:
                raise UserError(
                    f"The {what} folder {folder} does not accept a new file ({err.strerror or err}): "
                    f"point SENET_{'CHECKPOINT' if what == 'checkpoints' else what.upper()}_DIR at one you can write."
                ) from err
            rows.append((what, f"{folder} (writable)"))
        return format_rows(rows)

    def context(self) -> str:
        """The rows that no run changes: platform, versions, commit and folders (a run's own
        device, precision and profile are its :class:`senet_lib.train.RunPlan`'s banner)."""
        return format_rows([row for row in self.rows() if row[0] not in ("device", "precision", "profile")])

    def __str__(self) -> str:
        return format_rows(self.rows())


def format_rows(rows: list[tuple[str, str]]) -> str:
    """Label : value rows, the labels padded to one width (the start-up banners)."""
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}} : {v}" for k, v in rows)


def setup(
    seed: int | None = 0, device: str | None = None, profile: str | None = None, verbose: bool = True
) -> Environment:
    """One call for a notebook's setup cell: choose device, precision, profile and folders,
    seed everything, print a summary, and return it."""
    dev = get_device(device)
    env = Environment(
        platform=detect_platform(),
        device=dev,
        device_name=device_name(dev),
        precision=get_precision(dev),
        profile=get_profile(profile, dev),
        paths=get_paths(),
        python=_platform.python_version(),
        torch_version=torch.__version__,
        commit=git_commit(),
    )
    if seed is not None:
        seed_everything(seed)
    if verbose:
        print(env)
    return env


# --------------------------------------------------------------------------- training precision
PRECISIONS = ("bf16", "fp16", "fp32")
#: CPU feature flags (as Linux's /proc/cpuinfo spells them) that give native bf16 matrix arithmetic.
CPU_BF16_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}


def cpu_bf16_units() -> list[str]:
    """The native bf16 matrix units of this CPU (``["AMX-BF16", "AVX512-BF16"]``, a subset, or ``[]``),
    from torch's CPU probe, else ``/proc/cpuinfo``."""
    probes = {
        "AMX-BF16": getattr(getattr(torch._C, "_cpu", None), "_is_amx_tile_supported", None),
        "AVX512-BF16": getattr(getattr(torch._C, "_cpu", None), "_is_avx512_bf16_supported", None),
    }
    if all(callable(f) for f in probes.values()):
        return [name for name, probe in probes.items() if probe()]
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return [name for flag, name in CPU_BF16_FLAGS.items() if flag in flags]


def cpu_vector_isa() -> str | None:
    """The widest vector instruction set torch's CPU kernels use here (``"AVX512"``, ``"AVX2"`` …), or None."""
    probe = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    try:
        return str(probe()) if callable(probe) else None
    except RuntimeError:
        return None


@dataclass(frozen=True)
class Precision:
    """How to run the forward pass: the autocast dtype, whether a GradScaler is needed, and why
    this precision was chosen (printed by :func:`setup` and stored in every record)."""

    name: str  # "bf16" | "fp16" | "fp32"
    dtype: torch.dtype | None  # autocast dtype; None means plain fp32
    use_grad_scaler: bool
    reason: str = ""

    def autocast(self, device: torch.device) -> torch.autocast:
        """A ``torch.autocast`` context for ``device`` (disabled for fp32)."""
        return torch.autocast(
            device_type=device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None
        )


def _default_precision(device: torch.device) -> tuple[str, str]:
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return "bf16", "this GPU computes bf16 natively (Ampere or newer)"
        return "fp16", "this GPU has no native bf16 (older than Ampere): fp16 with a GradScaler"
    if device.type == "cpu":
        units = cpu_bf16_units()
        if units:
            return "bf16", f"this CPU has native bf16 matrix units ({', '.join(units)})"
        return (
            "fp32",
            "this CPU has no native bf16 matrix units (AMX or AVX512-BF16), where bf16 would be slower",
        )
    return "fp32", f"the default on {device.type}"


def get_precision(device: torch.device, name: str | None = None) -> Precision:
    """The training precision on ``device``: ``name``, else ``$SENET_PRECISION``, else the device's
    (bf16 on Ampere+ GPUs and on CPUs with bf16 units, fp16 + GradScaler on older GPUs, else fp32)."""
    device = torch.device(device)
    if name:
        reason = "asked for (precision argument)"
    elif os.environ.get("SENET_PRECISION"):
        name, reason = os.environ["SENET_PRECISION"], "asked for (SENET_PRECISION)"
    else:
        name, reason = _default_precision(device)
    if name not in PRECISIONS:
        raise ValueError(f"Unknown precision {name!r}: use one of {', '.join(PRECISIONS)}.")
    if name == "fp16" and device.type == "cpu":
        raise ValueError("fp16 autocast is not supported for training on the CPU: use fp32 or bf16.")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[name]
    return Precision(name=name, dtype=dtype, use_grad_scaler=(name == "fp16"), reason=reason)


def default_channels_last(device: torch.device) -> bool:
    """Channels-last when the recipe does not say: on CUDA and every CPU, not on MPS (chosen by
    ``benchmarks/train_speed.py``; records in ``results/bench_cpu-*``)."""
    return torch.device(device).type in ("cuda", "cpu")


# --------------------------------------------------------------------------- folders
#: The value of ``SENET_FIGURES_DIR`` that selects the checkout's committed ``figures/`` folder.
COMMITTED = "committed"


@dataclass(frozen=True)
class Paths:
    """Writable folders. Created on first use by :func:`get_paths`."""

    root: Path
    data: Path
    checkpoints: Path
    figures: Path
    results: Path


def committed_figures() -> Path:
    """The checkout's committed ``figures/`` folder (an error outside a checkout)."""
    if REPO_ROOT is None:
        raise UserError(
            f"SENET_FIGURES_DIR={COMMITTED} needs a checkout of the repository (there is no committed "
            "figures/ folder in an installed package): set SENET_FIGURES_DIR to a folder instead."
        )
    return REPO_ROOT / "figures"


class FolderError(UserError, OSError):
    """A folder named by an option or an environment variable that cannot be used (a file, a loop of
    symbolic links, not UTF-8 text, not creatable); the message names the option or variable."""


def resolve_folder(path: str | Path, what: str, variable: bool = False) -> Path:
    """``path`` with ``~`` expanded, made absolute and resolved; ``what`` (with ``variable``: ``VAR=``)
    names it in messages.

    Raises:
        FolderError: the path is a loop of symbolic links or holds bytes that are not UTF-8 text.
    """
    text = str(path)
    shown = text if text.isprintable() and _utf8(text) else ascii(text)
    named = f"{what}={shown}" if variable else f"{what} {shown}"
    if not _utf8(text):
        raise FolderError(
            f"{named} holds bytes that are not UTF-8 text, which senet_lib cannot record or print: rename that "
            "folder or use another one."
        )
    try:
        return Path(path).expanduser().resolve()
    except (RuntimeError, OSError):  # Python < 3.13: RuntimeError("Symlink loop ..."); later: ELOOP
        raise FolderError(
            f"{named} is a symbolic link that loops back on itself: make it point at a real folder, or use "
            "another one."
        ) from None


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def get_paths(create: bool = True) -> Paths:
    """Folders for data, checkpoints, figures and results (module docstring).

    Raises:
        FolderError: a ``SENET_*_DIR`` (or default) folder that cannot be used; the message names the variable.
    """
    if detect_platform() == "kaggle":
        root = Path("/kaggle/working")
    elif REPO_ROOT is not None and os.access(REPO_ROOT, os.W_OK):
        root = REPO_ROOT
    else:
        root = Path.cwd()

    def pick(var: str, default: Path) -> Path:
        value = os.environ.get(var)
        if var == "SENET_FIGURES_DIR" and value == COMMITTED:
            return committed_figures()
        return resolve_folder(value, var, variable=True) if value else default

    folders = {
        "SENET_DATA_DIR": pick("SENET_DATA_DIR", root / "data"),
        "SENET_CHECKPOINT_DIR": pick("SENET_CHECKPOINT_DIR", root / "checkpoints"),
        "SENET_FIGURES_DIR": pick(
            "SENET_FIGURES_DIR", root / ("build/figures" if root == REPO_ROOT else "figures")
        ),
        "SENET_RESULTS_DIR": pick("SENET_RESULTS_DIR", root / "results"),
    }
    paths = Paths(root, *folders.values())
    if create:
        for var, folder in folders.items():
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                given = f"{var}={folder}" if os.environ.get(var) else f"The default folder {folder}"
                reason = (
                    "it is a file, not a folder"
                    if folder.is_file()
                    else (err.strerror or str(err) or type(err).__name__)
                )
                raise FolderError(
                    f"{given} cannot be used ({reason}): point {var} at a folder you can write"
                    + (", or unset it." if os.environ.get(var) else ".")
                ) from err
    return paths


# --------------------------------------------------------------------------- the notebook series
def notebook_titles(folder: str | Path | None = None) -> dict[str, str]:
    """``{"00": "Start here", ...}`` from the first line of each ``NN_*.ipynb`` in ``folder`` (default:
    the checkout's ``notebooks/``, else the working directory); ``{}`` where there is none."""
    if folder is None:
        folder = REPO_ROOT / "notebooks" if REPO_ROOT is not None else Path.cwd()
    titles = {}
    for path in sorted(Path(folder).glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells") or [{}]
        first = "".join(cells[0].get("source", "")).splitlines()[:1] or [""]
        titles[path.name[:2]] = first[0].lstrip("# ").split("·", 1)[-1].strip()
    return titles
