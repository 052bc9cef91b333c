"""The command line: ``python -m senet_lib <command>`` (also installed as ``senet``).

=============  ===========================================================================
``train``      train one model with the notebooks' :func:`senet_lib.train.fit`; defaults come
               from the profile (``--profile quick|class|cpu|gpu|he2016|step``), every value can be overridden
``evaluate``   test loss and accuracy of a checkpoint (on the dataset it was trained on)
``analyse``    notebook 06's per-class excitation figures of a checkpoint, written to a folder
``ablate``     one of the paper's ablations (Tables 10–16) as a grid of variants × seeds
               (:func:`senet_lib.train.run_ablation`), one record per run in the results folder
``sweep``      several trainings at once from a plan file, within a time budget (resumable)
``profiles``   every profile's settings and estimated time per network (CPU, T4, H100)
``models``     the model names :func:`senet_lib.create_model` knows
``data``       where CIFAR-10/100 were found and what ``--dataset auto`` will use
=============  ===========================================================================

A run trained here lands in ``<save dir>/<run name>/`` (``checkpoint.pt``, ``history.json``,
``record.json``) with the same run name :func:`senet_lib.train.train_or_load` uses, so the
notebooks load it instead of training again when model, data and recipe agree.

Bad input and environment problems (an unknown model or dataset, a missing or corrupt file, a
recipe that cannot resume, a run folder in use by another run, a folder that cannot be written, a
full disk) end in one line that says what to do, in the command line's words, and exit status 2:
every :class:`senet_lib.errors.UserError` (and ``ValueError`` / ``OSError``) is shown that way in
:func:`main`. Set ``SENET_DEBUG=1`` to see the traceback instead.
"""

from .ablation import cmd_ablate
from .analysis import cmd_analyse
from .common import PROG, UsageError, check_dataset, check_model
from .evaluation import cmd_evaluate
from .options import add_config_flags, checked_config, config_from_args, model_options_from_args
from .parser import build_parser, cmd_data, cmd_models, debug_enabled, main, run_command
from .sweep import cmd_sweep, run_sweep
from .training import cmd_train

__all__ = ["build_parser", "check_dataset", "check_model", "debug_enabled", "main", "run_command"]
