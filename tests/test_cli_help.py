"""The command line explains itself: --version from pyproject, a help text on every option, profile defaults."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from senet_lib.cli import main
from senet_lib.cli.parser import build_parser, version

ROOT = Path(__file__).resolve().parents[1]


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_version_is_pyprojects(capsys):
    expected = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(
        1
    )
    assert version() == expected
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"senet-lib {expected}"


def test_every_option_has_help():
    missing = [
        f"{p.prog} {'/'.join(a.option_strings) or a.dest}"
        for p in _parsers(build_parser())
        for a in p._actions
        if not a.help and not isinstance(a, argparse._SubParsersAction)
    ]
    assert not missing, missing


def test_recipe_options_show_each_profiles_default():
    train = next(p for p in _parsers(build_parser()) if p.prog.endswith(" train"))
    helps = {a.option_strings[0]: a.help for a in train._actions if a.option_strings}
    from senet_lib.train import TrainConfig
    from senet_lib.train.config import get_settings

    epochs = {p: TrainConfig.from_profile(get_settings(p)).epochs for p in ("quick", "step")}
    assert f"quick: {epochs['quick']}" in helps["--epochs"] and f"step: {epochs['step']}" in helps["--epochs"]
    assert "[profile default: 0.9]" in helps["--momentum"]
    assert all("[profile default:" in helps[flag] for flag in ("--lr", "--wd", "--schedule", "--seed"))
    build_parser().format_help()  # a stray % in a help text would raise here
    train.format_help()
