"""The ``profiles`` command: every profile's settings and its estimated time per network (CPU, T4, H100)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..train import TrainConfig
from ..train.config import PROFILE_SETTINGS, Profile, estimate_profile

#: Recipe fields always shown, whatever their value.
_ALWAYS = ("epochs", "batch_size", "lr", "schedule")


def profile_summary(profile: Profile) -> dict[str, Any]:
    """One profile as plain values: its own fields, its whole recipe and the estimates (labelled)."""
    estimates = estimate_profile(profile)
    return {
        "name": profile.name,
        "description": profile.description,
        "models": list(profile.models),
        "dataset": profile.dataset,
        "train_subset": profile.train_subset,
        "test_subset": profile.test_subset,
        "seeds": list(profile.seeds),
        "recipe": profile.config.to_dict(),
        "estimated_seconds_per_network": {
            model: [e.to_dict() for e in rows] for model, rows in estimates.items()
        },
        "estimates_note": "estimates, not measurements: see senet_lib.train.estimate_profile for how each is made",
    }


def _changed(config: TrainConfig) -> dict[str, Any]:
    defaults = TrainConfig(epochs=1, batch_size=1).to_dict()
    values = config.to_dict()
    return {k: v for k, v in values.items() if k in _ALWAYS or (k != "seed" and v != defaults[k])}


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "no basis"
    if seconds >= 3 * 3600:
        return f"~{seconds / 3600:.0f} h"
    return f"~{seconds / 60:.0f} min" if seconds >= 90 else f"~{seconds:.0f} s"


def format_profile(profile: Profile) -> str:
    """Human-readable lines for one profile (the recipe shown as its changes from TrainConfig's defaults)."""
    data = profile.dataset + (
        f" (train {profile.train_subset}, test {profile.test_subset})" if profile.train_subset else ""
    )
    lines = [
        f"{profile.name}: {profile.description}",
        f"  models {' vs '.join(profile.models)} | data {data} | seeds {', '.join(map(str, profile.seeds))}",
        "  recipe " + ", ".join(f"{k}={v}" for k, v in _changed(profile.config).items()),
    ]
    estimates = estimate_profile(profile)
    for model, rows in estimates.items():
        shown = " | ".join(f"{e.device} {_minutes(e.seconds)}" for e in rows)
        lines.append(f"  estimated time per network, {model}: {shown}")
    lines += [f"    how ({profile.models[-1]}, {e.device}): {e.how}" for e in estimates[profile.models[-1]]]
    return "\n".join(lines)


def cmd_profiles(args: argparse.Namespace) -> int:
    """Print every profile (or the one named) with its estimated times; ``--json`` for all values."""
    names = [args.name] if args.name else list(PROFILE_SETTINGS)
    profiles = [PROFILE_SETTINGS[n] for n in names]
    if args.json:
        print(json.dumps([profile_summary(p) for p in profiles], indent=2))
        return 0
    print("\n\n".join(format_profile(p) for p in profiles))
    print(
        "\nAll times are estimates until a run measures them (senet_lib.train.estimate_profile says how they are made)."
    )
    return 0


def _add_profiles(sub: Any) -> None:
    p = sub.add_parser("profiles", help="the profiles' settings and estimated times")
    p.add_argument("name", nargs="?", choices=tuple(PROFILE_SETTINGS), help="one profile (default: all)")
    p.add_argument("--json", action="store_true", help="every value as JSON")
    p.set_defaults(func=cmd_profiles)
