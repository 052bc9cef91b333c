"""The ``ablate`` command: one of the paper's ablations (§6, Tables 10–16) as a grid of variants,
trained with one recipe and several seeds (:func:`senet_lib.train.run_ablation`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..checkpoint import check_fits, check_writable
from ..env import PROFILES, setup
from ..train import ABLATIONS, ablation_grid, run_ablation
from ..train.config import get_settings
from .common import check_dataset, check_model
from .options import (
    RUN_FILES,
    add_config_flags,
    add_data_options,
    config_from_args,
    default_results_dir,
    longest_run_name,
    run_data_from_args,
    subsets_from_args,
)


def cmd_ablate(args: argparse.Namespace) -> int:
    """Train (or load) every variant × seed of one ablation; print the per-variant table."""
    env = setup(seed=None, device=args.device, profile=args.profile, verbose=False)
    profile = get_settings(env.profile)
    model_name = check_model(args.model or profile.models[1])
    grid = ablation_grid(args.ablation, model_name, values=args.values, baseline=not args.no_baseline)
    dataset = check_dataset(args.dataset or profile.dataset)
    config = config_from_args(args, profile)
    seeds = tuple(args.seeds) if args.seeds else profile.seeds
    subsets_from_args(args, profile, dataset)  # checked before any folder is created
    save_dir = Path(args.save_dir or env.paths.checkpoints).expanduser()
    results_dir = Path(args.results_dir).expanduser() if args.results_dir else default_results_dir(env.paths)
    # Every run folder's and record's full path must fit the system's limits (checked with the longest
    # name a run can get): a long folder fails now, not after the first variant trained.
    longest = longest_run_name(max((variant for variant, _ in grid.values()), key=len), max(seeds))
    check_fits(save_dir, hint="pass another --save-dir")  # not UTF-8, or too long itself
    check_fits(results_dir, hint="pass another --results-dir")
    check_fits(save_dir / longest, RUN_FILES, hint="choose a shorter --save-dir")
    check_fits(
        results_dir, (f"ablation_{args.ablation}_{longest}.json",), hint="choose a shorter --results-dir"
    )
    check_writable(save_dir, hint="pass a writable --save-dir")
    check_writable(results_dir, hint="pass a writable --results-dir")
    print(env)
    data = run_data_from_args(args, profile, dataset)
    table, option, _ = ABLATIONS[args.ablation]
    print(
        f"\nAblation {args.ablation} (paper {table}, {option}): {len(grid)} variants × {len(seeds)} seeds on "
        f"{data.label} (train {len(data.train)}, test {len(data.test)}), {config.epochs} epochs, "
        f"profile {env.profile}, {args.workers} worker(s)."
    )
    result = run_ablation(
        grid,
        data,
        config,
        seeds=seeds,
        ablation=args.ablation,
        workers=args.workers,
        device=args.device,
        checkpoint_dir=save_dir,
        results_dir=results_dir,
        profile=env.profile,
    )
    print()
    print(result.summary.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"\nrecords: {results_dir} ({', '.join(result.runs['record'].head(3))}, …)")
    return 0


def _add_ablate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ablate",
        help="train one of the paper's ablation grids (Tables 10-16)",
        description="Train every variant of one ablation with one recipe and several seeds; finished runs "
        "are loaded and stopped ones resumed, one record per run goes to the results folder.",
    )
    p.add_argument("ablation", choices=tuple(ABLATIONS), help="which ablation (paper table)")
    p.add_argument("--model", help="the SE model (default: the profile's SE model)")
    p.add_argument(
        "--values", nargs="+", help="the values to try instead of the table's (stages: numbers or 'all')"
    )
    p.add_argument("--no-baseline", action="store_true", help="leave out the plain network (no SE)")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (default: the profile's)")
    p.add_argument("--workers", type=int, default=1, help="runs trained at a time, in separate processes")
    p.add_argument("--profile", choices=PROFILES, help=f"{' | '.join(PROFILES)} (default: by device)")
    add_data_options(p)
    g = p.add_argument_group("recipe (TrainConfig)")
    o = p.add_argument_group("output")
    o.add_argument("--save-dir", help="folder of run folders (default: the checkpoints folder)")
    o.add_argument(
        "--results-dir",
        help="where the records go (default: $SENET_RESULTS_DIR, in a checkout build/results, never the "
        "committed results/: pass --results-dir results for that)",
    )
    add_config_flags({"recipe": g, "output": o})
    p.add_argument("--device", help="cuda | cuda:N | mps | cpu (default: $SENET_DEVICE, else the best)")
    p.set_defaults(func=cmd_ablate)
