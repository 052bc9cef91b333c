"""What travels to and from the GPU machine for ``scripts/gpu_campaign.py``.

Out (``carry``): ``.gpu_carry/`` holds the CIFAR-10 JPEG pack and its unpacker in the layout of
``../shared`` (``shared/data/cifar10-jpeg/*.xz`` beside ``shared/tools/cifar10_jpeg.py``) and the commit
the tree was prepared from (``commit.json``); ``.gpu_resume/<run folder>/`` the resume state of
unfinished runs that came back from an earlier call (carried by the small and ablation stages);
``.gpu_wheels/`` the wheels the figures stage needs (papermill and a Jupyter kernel), which the GPU
machine lacks. Each is carried only by the stages that need it: the tree and what is carried must
stay under 64 MiB.

Back (``$OUT``): at most 8 files of at most 16 MiB: ``campaign.json`` (what ran, what it left),
``log.txt``, ``bundle.tar.NN`` (records, small weights, figures, logs) and ``state.tar.NN`` (the
unfinished runs' folders), each one tar cut in pieces of at most 15 MiB. :func:`collect` merges such a folder into the
repository.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
CARRY = ".gpu_carry"
RESUME = ".gpu_resume"
WHEELS = ".gpu_wheels"
PACK_FILES = ("data/cifar10-jpeg/train.npz.xz", "data/cifar10-jpeg/test.npz.xz", "tools/cifar10_jpeg.py")
#: The device tool's limits on what comes back from $OUT (its README): 8 files, 16 MiB each.
MAX_FILES_BACK = 8
MAX_FILE_BYTES = 16 * MiB
PIECE_BYTES = 15 * MiB  # a little under the limit
#: The working tree plus carried paths may not exceed 64 MiB; warn before that.
CARRY_WARN_BYTES = 60 * MiB
MANIFEST = "campaign.json"
BUNDLE_PREFIX = "bundle.tar."
STATE_PREFIX = "state.tar."
#: Figures stage: notebook 06 through papermill. The GPU machine has none of these (its package list,
#: .library/device/KINDS.md); everything else they need (pyyaml, requests, tqdm, ...) it has.
FIGURE_WHEELS = (
    "papermill", "nbclient", "nbformat", "ipykernel", "jupyter_client", "jupyter_core", "traitlets",
    "ipython", "ipython_pygments_lexers", "comm", "debugpy", "matplotlib_inline", "nest_asyncio",
    "nest_asyncio2", "pyzmq", "tornado", "fastjsonschema", "jsonschema", "jsonschema_specifications",
    "referencing", "rpds_py", "tenacity", "entrypoints", "ansicolors", "jedi", "parso", "pexpect",
    "ptyprocess", "prompt_toolkit", "wcwidth", "stack_data", "asttokens", "executing", "pure_eval",
    "decorator", "platformdirs", "tzdata",
)  # fmt: skip


class TransferError(Exception):
    """Something to fix before the transfer can go on (said in one sentence)."""


# --------------------------------------------------------------------------- out: the carry folder
def tracked_fingerprint(root: Path, paths: Iterable[str]) -> str:
    """SHA-256 over the named files' paths and contents (a missing file counts as empty)."""
    digest = hashlib.sha256()
    for rel in sorted(paths):
        path = root / rel
        digest.update(rel.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes() if path.is_file() else b"").digest())
    return digest.hexdigest()


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout


def tree_bytes(root: Path) -> int:
    """Bytes of what the device tool sends besides carried paths: tracked and untracked-not-ignored files."""
    names = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    return sum((root / n).stat().st_size for n in names if n and (root / n).is_file())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def prepare_carry(root: Path, shared: Path) -> dict[str, Any]:
    """Fill ``root/.gpu_carry`` with the CIFAR-10 pack, its unpacker and ``commit.json``; return a summary.

    Copies only what changed (same size and modification time = same file). Refuses when git does
    not ignore the folder, so that it never lands in a commit or travels twice.
    """
    carry = root / CARRY
    for folder in (CARRY, RESUME, WHEELS):
        if subprocess.run(["git", "-C", str(root), "check-ignore", "-q", folder + "/x"]).returncode != 0:
            raise TransferError(f"git does not ignore {folder}/: add '{folder}/' to .gitignore first.")
    for rel in PACK_FILES:
        src, dst = shared / rel, carry / "shared" / rel
        if not src.is_file():
            raise TransferError(f"{src} is missing: pass --shared with the folder that holds {rel}.")
        if (
            dst.is_file()
            and dst.stat().st_size == src.stat().st_size
            and dst.stat().st_mtime == src.stat().st_mtime
        ):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.unlink(missing_ok=True)
        shutil.copy2(src, dst)
        dst.chmod(0o644)
    (root / RESUME).mkdir(exist_ok=True)  # named in carry by the small and ablation stages
    tracked = [n for n in _git(root, "ls-files", "-z").split("\0") if n]
    dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no").strip())
    commit = {
        "commit": _git(root, "rev-parse", "HEAD").strip() + ("+dirty" if dirty else ""),
        "fingerprint": tracked_fingerprint(root, tracked),
        "files": tracked,
    }
    sizes = {"tree": tree_bytes(root), "carry": folder_bytes(carry), "wheels": folder_bytes(root / WHEELS)}
    pack = sum((carry / "shared" / rel).stat().st_size for rel in PACK_FILES)
    commit["state_room_bytes"] = state_room(sizes["tree"], pack)
    (carry / "commit.json").write_text(json.dumps(commit, indent=1) + "\n")
    sizes["resume"] = folder_bytes(root / RESUME)
    return {"commit": commit["commit"], "state_runs": sorted(_state_runs(root / RESUME)), **sizes}


def state_room(tree: int, pack: int, limit: int = 64 * MiB, margin: int = 2 * MiB) -> int:
    """Bytes of resume state that can still travel beside a ``tree``-byte working tree and the
    ``pack``-byte CIFAR pack (``commit.json`` and the tool are within the margin)."""
    return max(0, limit - tree - pack - margin)


def carried_room(root: Path) -> int | None:
    """``state_room_bytes`` from ``.gpu_carry/commit.json``, or None when it is not there."""
    path = root / CARRY / "commit.json"
    return json.loads(path.read_text()).get("state_room_bytes") if path.is_file() else None


def device_commit(root: Path) -> str:
    """On the GPU machine (no ``.git``): the commit ``commit.json`` names, marked ``+modified`` when
    the tracked files differ from what they were when it was written."""
    path = root / CARRY / "commit.json"
    if not path.is_file():
        return "unknown"
    info = json.loads(path.read_text())
    same = tracked_fingerprint(root, info["files"]) == info["fingerprint"]
    return info["commit"] + ("" if same else "+modified")


def download_wheels(root: Path, python: str) -> list[str]:
    """``pip download`` the figures stage's wheels (CPython 3.12, x86-64 Linux) into ``root/.gpu_wheels``."""
    dest = root / WHEELS
    dest.mkdir(exist_ok=True)
    platforms = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any"]
    cmd = [python, "-m", "pip", "download", "-q", "--only-binary=:all:", "--python-version", "3.12"]
    cmd += ["--implementation", "cp", *[a for p in platforms for a in ("--platform", p)], "-d", str(dest)]
    subprocess.run([*cmd, "papermill", "ipykernel"], check=True)
    keep = {n.lower().replace("-", "_") for n in FIGURE_WHEELS}
    for wheel in dest.glob("*.whl"):  # drop what the GPU machine has: two versions break its install
        if wheel.name.split("-")[0].lower() not in keep:
            wheel.unlink()
    return sorted(p.name for p in dest.glob("*.whl"))


def _state_runs(state: Path) -> list[str]:
    return [p.name for p in state.iterdir() if p.is_dir()] if state.is_dir() else []


# --------------------------------------------------------------------------- back: $OUT
def write_pieces(data: bytes, out: Path, prefix: str, piece: int | None = None) -> list[str]:
    """Cut ``data`` into ``prefix00``, ``prefix01``, ... of at most ``piece`` bytes (default
    :data:`PIECE_BYTES`) in ``out``."""
    names, piece = [], piece or PIECE_BYTES
    for i, start in enumerate(range(0, len(data), piece)):
        name = f"{prefix}{i:02d}"
        (out / name).write_bytes(data[start : start + piece])
        names.append(name)
    return names


def tar_bytes(members: dict[str, Path]) -> bytes:
    """An uncompressed tar of ``{name in tar: file}`` (the files are mostly weights: they hardly compress)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, path in sorted(members.items()):
            tar.add(path, arcname=name, recursive=False)
    return buffer.getvalue()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- collect
def _extract(data: bytes, dest: Path) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
        tar.extractall(dest, filter="data")
    return names


def collect(fetched: Path, root: Path) -> dict[str, list[str]]:
    """Merge what one campaign command sent back (``fetched``) into the repository at ``root``.

    Records go to ``results/`` (one already there, by name or by run and creation time, is kept),
    weights with their sidecars to ``pretrained/`` (never overwritten), figures to ``figures/``
    (regenerated: replaced), logs to ``build/gpu_campaign/``; the unfinished runs' state to
    ``.gpu_resume/`` (replacing older state of the same run), and the state of runs the
    command finished is removed from there. Running it twice changes nothing the second time.
    """
    manifest_path = fetched / MANIFEST
    if not manifest_path.is_file():
        raise TransferError(
            f"{fetched} has no {MANIFEST}: give the folder the device tool fetched $OUT into."
        )
    manifest = json.loads(manifest_path.read_text())
    for name, digest in manifest.get("files", {}).items():
        path = fetched / name
        if not path.is_file():
            raise TransferError(
                f"{path} did not come back (see the reply's files_left_out); nothing was merged."
            )
        if sha256(path) != digest:
            raise TransferError(
                f"{path} is damaged (its SHA-256 differs from {MANIFEST}'s); nothing was merged."
            )
    done: dict[str, list[str]] = {
        "results": [],
        "pretrained": [],
        "figures": [],
        "logs": [],
        "state": [],
        "kept": [],
    }
    staging = root / "build" / "gpu_campaign" / f"{manifest['stage']}-{manifest['started'].replace(':', '')}"
    staging.mkdir(parents=True, exist_ok=True)
    shutil.copy2(manifest_path, staging / MANIFEST)
    bundle = sorted(n for n in manifest.get("files", {}) if n.startswith(BUNDLE_PREFIX))
    if bundle:
        unpacked = staging / "bundle"
        shutil.rmtree(unpacked, ignore_errors=True)
        _extract(b"".join((fetched / n).read_bytes() for n in bundle), unpacked)
        _merge_bundle(unpacked, root, done)
    pieces = sorted(n for n in manifest.get("files", {}) if n.startswith(STATE_PREFIX))
    state = root / RESUME
    if pieces:
        data = b"".join((fetched / n).read_bytes() for n in pieces)
        incoming = staging / "state"
        shutil.rmtree(incoming, ignore_errors=True)
        names = {Path(n).parts[0] for n in _extract(data, incoming)}
        for run in sorted(names):
            shutil.rmtree(state / run, ignore_errors=True)
            shutil.copytree(incoming / run, state / run)
            done["state"].append(run)
    for run in manifest.get("finished_runs", []):
        if (state / run).exists():
            shutil.rmtree(state / run)
    return done


def _same_record(path: Path, folder: Path) -> Path | None:
    """A record in ``folder`` with the name of ``path``, or of the same run created at the same time."""
    if (folder / path.name).exists():
        return folder / path.name
    try:
        new = json.loads(path.read_text())
    except ValueError:
        return None
    key = (new.get("kind"), new.get("run_name"), new.get("created"))
    for old in folder.glob("*.json"):
        try:
            record = json.loads(old.read_text())
        except ValueError:
            continue
        if (
            isinstance(record, dict)
            and (record.get("kind"), record.get("run_name"), record.get("created")) == key
        ):
            return old
    return None


def _merge_bundle(unpacked: Path, root: Path, done: dict[str, list[str]]) -> None:
    for path in sorted(p for p in unpacked.rglob("*") if p.is_file()):
        rel = path.relative_to(unpacked)
        top = rel.parts[0]
        if top == "results":
            folder = root / "results"
            folder.mkdir(exist_ok=True)
            twin = _same_record(path, folder)
            if twin is not None:
                done["kept"].append(str(twin.relative_to(root)))
                continue
        elif top == "pretrained" and (root / rel).exists():
            done["kept"].append(str(rel))
            continue
        elif top not in ("pretrained", "figures"):
            done["logs"].append(str(path.relative_to(root)))
            continue
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, root / rel)
        done[top].append(str(rel))
