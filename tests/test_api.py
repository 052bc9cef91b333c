"""The public API and the import direction, pinned.

``PUBLIC_API`` is every public module's ``__all__`` as it stands: removing or renaming a name breaks
notebooks and users, so it must be a decision (update the pin), never an accident. Every
``from senet_lib... import ...`` and ``senet_lib.<name>`` in the notebooks must resolve. And the
library reads one way: env → data → se / models → train → excitation → plots / figures, no module
importing from a later layer (parsed with ``ast``, function-level imports included).
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "senet_lib"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

PUBLIC_API = {
    "senet_lib": (
        "Excitation",
        "Squeeze",
        "SqueezeExcitation",
        "checkpoint",
        "create_model",
        "data",
        "env",
        "excitation",
        "figures",
        "get_device",
        "get_paths",
        "get_precision",
        "get_profile",
        "list_models",
        "override_gate",
        "pretrained",
        "profiles",
        "register_model",
        "scale",
        "se_blocks",
        "seed_everything",
        "setup",
        "squeeze",
        "train",
    ),
    "senet_lib.bench": (
        "ALIASES",
        "BenchSettings",
        "DATA_NOTE",
        "REFERENCE_RATIOS",
        "TARGETS",
        "TIMING_NOTE",
        "VARIANTS",
        "Variant",
        "backend_flags",
        "canonical_variant",
        "check_targets",
        "default_settings",
        "default_variants",
        "format_loop",
        "format_record",
        "load_bench_data",
        "load_loop_data",
        "loop_config",
        "main_bench",
        "measure",
        "measure_interleaved",
        "measure_loop",
        "mixed_precision_name",
        "paired_speedups",
        "profile_steps",
        "round_order",
        "run_benchmark",
        "summarize",
        "tf32_settings",
        "throughput_stats",
        "write_bench_record",
    ),
    "senet_lib.checkpoint": (
        "EARLIER_RUN_ROOTS",
        "find_earlier_run",
        "restore_earlier_run",
        "ArchitectureMismatchError",
        "CHECKPOINT_FORMAT",
        "CheckpointError",
        "FORMAT_VERSION",
        "LOCK_HEARTBEAT",
        "LOCK_NAME",
        "LOCK_STALE_AFTER",
        "MAX_EXPORT_BYTES",
        "MissingArchitectureError",
        "OutputError",
        "RunFolderBusy",
        "WEIGHTS_FORMAT",
        "arch_config_of",
        "atomic_write",
        "atomic_write_json",
        "check_writable",
        "claim_run_folder",
        "describe_arch",
        "export_weights",
        "load_checkpoint",
        "read_checkpoint",
        "remove_stale_temps",
        "save_checkpoint",
        "sha256_file",
        "stale_temp_pattern",
        "verify_weights",
    ),
    "senet_lib.cli": (
        "build_parser",
        "check_dataset",
        "check_model",
        "main",
    ),
    "senet_lib.cost": (
        "MacCount",
        "PAPER_ROWS",
        "count_macs",
        "count_parameters",
        "default_stage_modules",
        "parameters_by_child",
        "se_parameters_by_stage",
        "se_scale_multiplies",
        "stage_output_sizes",
        "time_forward_backward",
    ),
    "senet_lib.data": (
        "DATASETS",
        "DataWarning",
        "DeviceLoader",
        "ImageDataset",
        "ImageSplit",
        "TorchLoader",
        "balanced_indices",
        "cutout",
        "data_status",
        "find_cifar",
        "load_dataset",
        "make_loaders",
        "make_synthetic",
        "normalize_images",
        "random_crop",
        "search_dirs",
    ),
    "senet_lib.env": (
        "CPU_BF16_FLAGS",
        "Environment",
        "PRECISIONS",
        "PROFILES",
        "Paths",
        "Precision",
        "RENAMED_PROFILES",
        "REPO_ROOT",
        "allocator",
        "cpu_bf16_units",
        "cpu_vector_isa",
        "cpu_model",
        "cpu_id",
        "default_channels_last",
        "detect_platform",
        "device_name",
        "environment_record",
        "get_device",
        "get_paths",
        "get_precision",
        "get_profile",
        "git_commit",
        "seed_everything",
        "setup",
        "synchronize",
    ),
    "senet_lib.cloud": (
        "PLATFORM_PACKAGES",
        "archive_url",
        "bootstrap",
        "cloud_platform",
        "find_attached_repo",
        "missing_requirements",
    ),
    "senet_lib.errors": ("UserError",),
    "senet_lib.folders": ("COMMITTED", "Paths", "committed_figures", "get_paths"),
    "senet_lib.excitation": (
        "BlockSeparation",
        "ExcitationRecorder",
        "ExcitationStats",
        "KnockoutResult",
        "SATURATION_HIGH",
        "SeparationReport",
        "SATURATION_LOW",
        "accuracy_with_channels_off",
        "channel_order",
        "class_excitations",
        "class_separation",
        "class_specificity",
        "eval_mode",
        "find_blocks",
        "image_excitations",
        "knockout_comparison",
        "paper_blocks",
        "parse_block_name",
        "per_image_excitations",
        "report_from_samples",
        "sample_channels",
        "saturation",
        "select_blocks",
        "separation_of_samples",
        "separation_report",
        "similarity",
        "summary_table",
        "top_channels",
        "untrained_like",
    ),
    "senet_lib.figures": (
        "save_figure",
        "set_style",
    ),
    "senet_lib.models": (
        "ArchConfig",
        "create_model",
        "list_models",
        "register_model",
        "zero_residual_branches",
    ),
    "senet_lib.models.modes": (
        "eval_mode",
        "module_mode",
    ),
    "senet_lib.plots.ablation": ("plot_ablation",),
    "senet_lib.plots.architecture": (
        "COLORS",
        "PLACEMENT_TITLES",
        "draw_se_module",
        "draw_se_placements",
    ),
    "senet_lib.plots.diagrams": (
        "RFStep",
        "draw_se_block",
        "layer_geometry",
        "plot_feature_maps",
        "plot_receptive_fields",
        "receptive_field",
        "receptive_field_table",
    ),
    "senet_lib.plots.excitation": (
        "plot_class_band",
        "plot_class_excitations",
        "plot_excitation_heatmaps",
        "plot_image_vs_class",
        "plot_saturation",
        "plot_similarity",
        "plot_specificity",
    ),
    "senet_lib.plots.significance": ("plot_knockout", "plot_separation"),
    "senet_lib.plots.training": (
        "HistoryLike",
        "METRICS",
        "format_table",
        "histories_frame",
        "plot_curves",
        "results_table",
        "split_metric",
    ),
    "senet_lib.pretrained": (
        "PretrainedMatch",
        "find_pretrained",
        "list_pretrained",
        "pick_pretrained",
        "pick_pretrained_pair",
        "pretrained_dir",
        "recorded_profile",
        "same_recipe",
    ),
    "senet_lib.estimates": (
        "ASSUMED_COMPILE_SECONDS",
        "ASSUMED_TFLOPS",
        "TimeEstimate",
        "estimate_profile",
        "recorded_cpu_throughput",
    ),
    "senet_lib.precision": (
        "CPU_BF16_FLAGS",
        "PRECISIONS",
        "Precision",
        "cpu_bf16_units",
        "cpu_vector_isa",
        "default_channels_last",
        "get_precision",
    ),
    "senet_lib.profiles": (
        "GPU_PROFILE_RATIONALE",
        "PROFILE_SETTINGS",
        "Profile",
        "get_settings",
    ),
    "senet_lib.safe_pickle": (
        "CifarUnpickler",
        "CorruptFileError",
        "UnsafePickleError",
        "load_cifar_pickle",
    ),
    "senet_lib.se": (
        "Excitation",
        "GATES",
        "PAPER_NAME",
        "SQUEEZES",
        "Squeeze",
        "SqueezeExcitation",
        "hidden_width",
        "make_gate",
        "override_gate",
        "paper_name",
        "parse_block_name",
        "scale",
        "se_blocks",
        "squeeze",
    ),
    "senet_lib.train": (
        "ABLATIONS",
        "Ablation",
        "AblationError",
        "CHECKPOINT_NAME",
        "ConfigError",
        "CpuSyncBatchNorm",
        "DistContext",
        "DistributedError",
        "DistributedTrainer",
        "HISTORY_NAME",
        "History",
        "HistoryRow",
        "RECORD_NAME",
        "RecipeMismatchError",
        "Run",
        "RunExistsError",
        "RunRecord",
        "SCHEDULES",
        "TrainConfig",
        "Trainer",
        "TrainingDiverged",
        "ablation_grid",
        "cleanup",
        "convert_sync_batchnorm",
        "default_run_name",
        "environment_record",
        "fit",
        "get_context",
        "init_distributed",
        "is_main",
        "resolve_channels_last",
        "run_environment",
        "recorded_ablations",
        "run_ablation",
        "run_folder",
        "run_record",
        "seeded_model",
        "summarize",
        "train_or_load",
        "write_record",
    ),
}

#: The layers, in the order data flows; a module may import from its own layer or an earlier one.
LAYERS = {
    "errors": 0,
    "cloud": 0,
    "env": 1,
    "folders": 1,
    "precision": 1,
    "safe_pickle": 1,
    "data": 2,
    "se": 3,
    "models": 3,
    "cost": 3,
    "checkpoint": 4,
    "pretrained": 4,
    "profiles": 4,
    "estimates": 4,
    "train": 4,
    "bench": 4,
    "excitation": 5,
    "plots": 6,
    "figures": 6,
    "cli": 7,
    "__main__": 7,
    "__init__": 7,
}


@pytest.mark.parametrize("module", sorted(PUBLIC_API))
def test_public_names_are_pinned(module):
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(PUBLIC_API[module]), f"{module}.__all__ changed: update the pin"
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert not missing, f"{module}.__all__ names what it does not define: {missing}"


def _notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    lines = ("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return "\n".join(
        line for cell in lines for line in cell.splitlines() if not line.lstrip().startswith(("%", "!"))
    )


def test_every_notebook_import_resolves():
    checked = 0
    for notebook in NOTEBOOKS:
        code = _notebook_code(notebook)
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("senet_lib"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name) or importlib.util.find_spec(
                        f"{node.module}.{alias.name}"
                    ), f"{notebook.name}: from {node.module} import {alias.name} fails"
                    checked += 1
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("senet_lib"):
                        importlib.import_module(alias.name)
                        checked += 1
        senet_lib = importlib.import_module("senet_lib")
        for name in set(re.findall(r"\bsenet_lib\.([A-Za-z_]\w*)", code)):
            assert hasattr(senet_lib, name), f"{notebook.name}: senet_lib.{name} is gone"
            checked += 1
    assert checked > 50  # the notebooks do import the library


def _layer(path: Path) -> int:
    parts = path.relative_to(LIBRARY).with_suffix("").parts
    return LAYERS[parts[0]]


def _imported(path: Path, source: str | None = None) -> list[str]:
    """The senet_lib modules ``path`` imports (relative imports resolved), TYPE_CHECKING ones too."""
    package = ["senet_lib", *path.relative_to(LIBRARY).parent.parts]
    if path.name != "__init__.py" and path.parent == LIBRARY:
        package = ["senet_lib"]
    found = []
    tree = ast.parse(source if source is not None else path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                if node.module:
                    names = [".".join([*base, node.module])]
                else:
                    names = [".".join([*base, alias.name]) for alias in node.names]
            else:
                names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [name for name in names if name == "senet_lib" or name.startswith("senet_lib.")]
    return found


def _backward(path: Path, source: str | None = None) -> list[str]:
    """The imports of ``path`` that reach a later layer than its own."""
    wrong = []
    for module in _imported(path, source):
        parts = module.split(".")
        target = LAYERS["__init__"] if len(parts) == 1 else LAYERS[parts[1]]
        if target > _layer(path):
            wrong.append(f"{path.relative_to(ROOT)} imports {module}")
    return wrong


def test_imports_run_one_way():
    files = sorted(LIBRARY.rglob("*.py"))
    assert {p.relative_to(LIBRARY).parts[0].removesuffix(".py") for p in files} <= set(LAYERS)
    wrong = [line for path in files for line in _backward(path)]
    assert not wrong, "imports against the data flow:\n" + "\n".join(wrong)


def test_errors_imports_nothing_from_the_library():
    assert _imported(LIBRARY / "errors.py") == []


def test_the_direction_check_sees_a_backward_import():
    """The check can fail: a data module importing train, or a model importing excitation, is caught."""
    loaders = LIBRARY / "data" / "loaders.py"
    assert _backward(loaders, "from ..train import fit\n") == [
        "senet_lib/data/loaders.py imports senet_lib.train"
    ]
    assert _backward(LIBRARY / "se.py", "def f():\n    from .excitation import eval_mode\n")
    assert _backward(loaders, "from .augment import cutout\nfrom ..env import REPO_ROOT\n") == []


def test_no_module_is_over_400_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in LIBRARY.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, f"split these modules (one idea each): {long}"
