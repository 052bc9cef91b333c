"""``Environment.check``: notebook 00's one call that says whether this machine can run the series."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch

import senet_lib
from senet_lib.env import Paths, Precision
from senet_lib.errors import UserError


def environment(tmp_path, precision: Precision | None = None) -> senet_lib.env.Environment:
    env = senet_lib.setup(device="cpu", verbose=False)
    folders = {name: tmp_path / name for name in ("data", "checkpoints", "figures", "results")}
    for folder in folders.values():
        folder.mkdir()
    return dataclasses.replace(
        env, paths=Paths(root=tmp_path, **folders), precision=precision or env.precision
    )


def test_check_passes_on_a_working_machine_and_names_each_check(tmp_path):
    report = environment(tmp_path).check()
    assert report.splitlines()[0].startswith("arithmetic") and "fp32 within" in report
    assert all(
        f"{tmp_path / name} (writable)" in report for name in ("data", "checkpoints", "figures", "results")
    )
    assert list(tmp_path.glob("*/*")) == []  # the probes leave nothing behind


def test_check_names_a_folder_that_takes_no_file(tmp_path):
    env = environment(tmp_path)
    (tmp_path / "results").rmdir()
    (tmp_path / "results").write_text("a file where the folder should be")
    with pytest.raises(
        UserError, match=r"The results folder .* does not accept a new file.*SENET_RESULTS_DIR"
    ):
        env.check()


def test_check_catches_a_precision_that_does_not_run_in_its_dtype(tmp_path):
    @dataclasses.dataclass(frozen=True)
    class Ignored(Precision):
        def autocast(self, device: torch.device):  # an autocast that silently stays in fp32
            return contextlib.nullcontext()

    with pytest.raises(UserError, match="bf16 on cpu gave torch.float32 results"):
        environment(tmp_path, Ignored("bf16", torch.bfloat16, False)).check()
