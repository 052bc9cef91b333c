"""Environment: device choice and overrides, precision, profiles, folders, figure saving."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import pytest
import torch

from senet_lib import env
from senet_lib.plots import save_figure
from senet_lib.train.config import PROFILE_SETTINGS, get_settings


def _fake_units(monkeypatch, units) -> None:
    """Pretend this CPU has ``units()`` bf16 units, wherever the name is read (precision, env's record)."""
    monkeypatch.setattr(env, "cpu_bf16_units", units)


def test_mps_fallback_set_before_torch():
    import os

    assert os.environ["PYTORCH_ENABLE_MPS_FALLBACK"] == "1"


def test_device_override(monkeypatch):
    monkeypatch.setenv("SENET_DEVICE", "cpu")
    assert env.get_device() == torch.device("cpu")
    monkeypatch.setenv("SENET_DEVICE", "tpu")
    with pytest.raises(ValueError, match="Unknown device 'tpu'"):
        env.get_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_device_says_which_exist(monkeypatch):
    monkeypatch.setenv("SENET_DEVICE", "cuda")
    with pytest.raises(ValueError, match="not available on this machine .*available: cpu"):
        env.get_device()


def test_precision_choices(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv("SENET_PRECISION", raising=False)
    _fake_units(monkeypatch, lambda: [])
    assert env.get_precision(cpu).name == "fp32" and env.get_precision(cpu).dtype is None
    assert env.get_precision(cpu, "bf16").dtype == torch.bfloat16
    assert env.get_precision(torch.device("cuda"), "fp16").use_grad_scaler
    with pytest.raises(ValueError, match="fp16 autocast is not supported .* CPU"):
        env.get_precision(cpu, "fp16")
    monkeypatch.setenv("SENET_PRECISION", "fp8")
    with pytest.raises(ValueError, match="Unknown precision 'fp8'"):
        env.get_precision(cpu)


def test_cpu_precision_follows_the_bf16_units_and_every_cpu_trains_channels_last(monkeypatch):
    """bf16 on a CPU with native bf16 matrix units, fp32 on one without, channels-last on both (and CUDA),
    not on MPS; the reason is said either way, and SENET_PRECISION wins over the capability."""
    cpu = torch.device("cpu")
    monkeypatch.delenv("SENET_PRECISION", raising=False)
    _fake_units(monkeypatch, lambda: ["AMX-BF16", "AVX512-BF16"])
    with_units = env.get_precision(cpu)
    assert with_units.name == "bf16" and with_units.dtype == torch.bfloat16 and not with_units.use_grad_scaler
    assert "AMX-BF16" in with_units.reason
    assert env.default_channels_last(cpu) and env.default_channels_last(torch.device("cuda"))
    _fake_units(monkeypatch, lambda: [])
    without = env.get_precision(cpu)
    assert without.name == "fp32" and "no native bf16" in without.reason
    assert not env.default_channels_last(torch.device("mps"))
    monkeypatch.setenv("SENET_PRECISION", "fp32")
    _fake_units(monkeypatch, lambda: ["AMX-BF16"])
    forced = env.get_precision(cpu)
    assert forced.name == "fp32" and "SENET_PRECISION" in forced.reason
    summary = str(env.setup(seed=None, device="cpu", verbose=False))
    assert "fp32 (asked for (SENET_PRECISION))" in summary
    record = env.setup(seed=None, device="cpu", verbose=False).record()
    assert record["precision"] == "fp32" and record["precision_reason"] == forced.reason
    assert record["cpu_bf16_units"] == ["AMX-BF16"]


def test_cpu_bf16_units_reads_cpuinfo_without_torch_probe(monkeypatch, tmp_path):
    """Without torch's private probe the flags come from /proc/cpuinfo."""
    monkeypatch.setattr(torch._C, "_cpu", None, raising=False)
    real_read = env.Path.read_text

    def fake_read(self, *args, **kwargs):
        if str(self) == "/proc/cpuinfo":
            return "flags : fpu sse avx512f avx512_bf16 amx_tile\n"
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(env.Path, "read_text", fake_read)
    assert env.cpu_bf16_units() == ["AVX512-BF16"]


def test_cpu_vector_isa_is_torchs_capability_and_lands_in_records(monkeypatch):
    """The vector ISA comes from torch's own probe, is None where torch cannot say, and is recorded."""
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert env.cpu_vector_isa() == "AVX2"
    record = env.environment_record(torch.device("cpu"), "fp32")
    assert record["cpu_vector_isa"] == "AVX2"
    assert env.environment_record(torch.device("mps"), "fp32")["cpu_vector_isa"] is None

    def broken():
        raise RuntimeError("no probe")

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", broken)
    assert env.cpu_vector_isa() is None
    monkeypatch.delattr(torch.backends.cpu, "get_cpu_capability")
    assert env.cpu_vector_isa() is None


def test_cpu_model_is_named_in_the_device_name(monkeypatch):
    """Two machines of one kind (Intel with bf16 units, AMD without) must be told apart in records."""
    real_read = env.Path.read_text

    def fake_read(self, *args, **kwargs):
        if str(self) == "/proc/cpuinfo":
            return "processor : 0\nmodel name\t:  AMD   EPYC 9B14\nflags : fpu sse\n"
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(env.Path, "read_text", fake_read)
    assert env.cpu_model() == "AMD EPYC 9B14"
    assert "AMD EPYC 9B14 (" in env.device_name(torch.device("cpu"))


def test_cpu_id_tells_apart_cpus_a_vm_names_alike(monkeypatch):
    """Two VMs both called "AMD EPYC": a Zen 3 (AVX2) and a Zen 4 (AVX512-BF16) part; records must differ."""
    real_read = env.Path.read_text
    cpuinfo = {"text": ""}

    def fake_read(self, *args, **kwargs):
        if str(self) == "/proc/cpuinfo":
            if cpuinfo["text"] is None:
                raise OSError("no /proc here")
            return cpuinfo["text"]
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(env.Path, "read_text", fake_read)
    block = "processor\t: {n}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: {m}\nmodel name\t: AMD EPYC\nstepping\t: 1\n"
    cpuinfo["text"] = block.format(n=0, m=1) + "\n" + block.format(n=1, m=17)  # the first processor counts
    assert env.cpu_id() == "AuthenticAMD family 25 model 1 stepping 1"
    assert env.environment_record(torch.device("cpu"), "fp32")["cpu_id"] == env.cpu_id()
    assert env.environment_record(torch.device("mps"), "fp32")["cpu_id"] is None
    cpuinfo["text"] = block.format(n=0, m=17)
    assert env.cpu_id() == "AuthenticAMD family 25 model 17 stepping 1"
    cpuinfo["text"] = "processor : 0\nmodel name : Apple M2\n"  # no family or model: nothing to say
    assert env.cpu_id() is None
    cpuinfo["text"] = None
    assert env.cpu_id() is None


def test_profile_default_and_override(monkeypatch):
    monkeypatch.delenv("SENET_PROFILE", raising=False)
    assert env.get_profile(device=torch.device("cpu")) == "quick"
    assert env.get_profile(device=torch.device("cuda")) == "class"
    monkeypatch.setenv("SENET_PROFILE", "step")
    assert get_settings().epochs == 100 and get_settings().milestones == (30, 60, 90)
    monkeypatch.setenv("SENET_PROFILE", "paper")  # the old name says what it is called now
    with pytest.raises(ValueError, match="now called 'step'.*use 'step'"):
        env.get_profile()
    monkeypatch.setenv("SENET_PROFILE", "huge")
    with pytest.raises(ValueError, match="Unknown profile 'huge'"):
        env.get_profile()
    assert set(PROFILE_SETTINGS) == set(env.PROFILES)


def test_paths_follow_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SENET_FIGURES_DIR", str(tmp_path / "figs"))
    paths = env.get_paths()
    assert paths.figures == tmp_path / "figs" and paths.figures.is_dir()


def test_platform_kaggle(monkeypatch):
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert env.detect_platform() == "kaggle"


def test_seeding_repeats():
    env.seed_everything(7)
    a = torch.rand(3)
    env.seed_everything(7)
    assert torch.equal(a, torch.rand(3))


def test_setup_summary(capsys):
    e = env.setup(seed=0)
    out = capsys.readouterr().out
    assert "device" in out and str(e.paths.figures) in out
    assert e.record()["torch"] == torch.__version__


def test_save_figure_writes_png_pdf_and_provenance():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    written = save_figure(fig, "unit_test_plot", provenance={"dataset": "synthetic"})
    plt.close(fig)
    assert written["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert written["pdf"].read_bytes()[:5] == b"%PDF-"
    meta = json.loads(written["json"].read_text())
    assert meta["dataset"] == "synthetic" and meta["figure"] == "unit_test_plot" and "commit" in meta
    with pytest.raises(ValueError, match="Figure name"):
        save_figure(fig, "../escape")


def test_git_commit_falls_back_to_senet_commit_without_git(monkeypatch):
    """A copy of the tree with no .git (copied without its history) reports the commit it was made from."""
    from senet_lib import env as env_module

    monkeypatch.setattr(env_module, "REPO_ROOT", None)
    monkeypatch.delenv("SENET_COMMIT", raising=False)
    assert env_module.git_commit() == "unknown"
    monkeypatch.setenv("SENET_COMMIT", "abc123+modified")
    assert env_module.git_commit() == "abc123+modified"


def test_cpu_records_name_the_allocator(monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "17179869184")
    monkeypatch.setenv("MALLOC_CONF", "not a glibc tuning")  # jemalloc's own variable: no trailing underscore
    record = env.environment_record(torch.device("cpu"), "fp32")
    assert record["allocator"] == {
        "ld_preload": ["libjemalloc.so.2"],
        "malloc_env": {"MALLOC_TRIM_THRESHOLD_": "17179869184"},
    }
    monkeypatch.delenv("LD_PRELOAD")
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    assert env.environment_record(torch.device("cpu"), "fp32")["allocator"] == {
        "ld_preload": [],
        "malloc_env": {},
    }
    assert env.environment_record(torch.device("meta"), "fp32")["allocator"] is None
