"""scripts/gpu_campaign.py (issue #11) without a GPU: the stage planner, the time and state budgets,
the scheduler, the carry folder and collecting what came back, with fake runs and processes."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


campaign = _load("gpu_campaign")
jobs_mod = sys.modules["gpu_jobs"]
transfer = sys.modules["gpu_transfer"]
device = sys.modules["gpu_device"]
Job, Budget = jobs_mod.Job, jobs_mod.Budget


def _record(model: str, profile: str, seed: int, *, device="cuda", epochs=3, planned=3, **extra) -> dict:
    return {
        "kind": "train",
        "model": {"name": model},
        "profile": profile,
        "seed": seed,
        "dataset": {"name": "cifar10", "synthetic": False},
        "recipe": {"epochs": planned},
        "epochs": epochs,
        "device": device,
        "wall_time_s": 300.0,
        "run_name": f"{model}-cifar10-{profile}-seed{seed}",
        "created": "2026-11-24T00:00:00+00:00",
        **extra,
    }


def _run_folder(folder: Path, epochs: int, *, finished: bool = False, size: int = 1000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "checkpoint.pt").write_bytes(b"w" * size)
    (folder / "history.json").write_text(json.dumps([{"epoch": e + 1} for e in range(epochs)]))
    if finished:
        (folder / "record.json").write_text("{}")
    return folder


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    monkeypatch.setattr(campaign, "state_bytes", lambda model: {"20": 2, "56": 7}.get(model[-2:], 14) * MiB)
    return campaign.Context(tmp_path, tmp_path / ".gpu_state" / "work" / "w", python="python")


# --------------------------------------------------------------------------- planner
def test_small_stage_skips_recorded_runs_and_resumes_started_ones(ctx):
    ctx.records = [
        _record("se_resnet20", "he2016", 0),  # finished on a GPU: skipped
        _record("resnet20", "he2016", 0, device="cpu"),  # a CPU run does not count
        _record("resnet56", "he2016", 0, epochs=2),  # unfinished record does not count
        _record("se_resnet56", "cpu", 0),  # another profile does not count
    ]
    _run_folder(ctx.runs / "resnet110-cifar10-he2016-seed0", 5)
    jobs = {j.key: j for j in campaign.plan_small(ctx)}
    assert len(jobs) == 8 and all(j.profile == "he2016" and j.carry_state for j in jobs.values())
    assert [k for k, j in jobs.items() if j.skip] == ["se_resnet20-cifar10-he2016-seed0"]
    resumed = jobs["resnet110-cifar10-he2016-seed0"]
    assert resumed.holds_state and resumed.epochs_done == 5
    assert "--resume" in resumed.argv and resumed.argv[resumed.argv.index("--profile") + 1] == "he2016"
    wave = jobs_mod.first_wave(list(jobs.values()), max_parallel=16, state_budget=30 * MiB)
    assert wave[0] is resumed  # a resume goes first, then new runs while their state fits
    assert [j.key for j in wave[1:]] == [
        "resnet20-cifar10-he2016-seed0",
        "se_resnet56-cifar10-he2016-seed0",
        "resnet56-cifar10-he2016-seed0",
    ]
    assert sum(j.state_bytes for j in wave) <= 30 * MiB


def test_headline_runs_se_first_and_estimates_from_the_twin(ctx):
    ctx.seeds = (0, 1)
    ctx.records = [_record("se_resnet50", "gpu", 0)]
    jobs = campaign.plan_headline(ctx)
    assert [j.key for j in jobs] == [
        "se_resnet50-cifar10-gpu-seed0",
        "resnet50-cifar10-gpu-seed0",
        "se_resnet50-cifar10-gpu-seed1",
        "resnet50-cifar10-gpu-seed1",
    ]
    assert jobs[0].skip and not any(j.skip for j in jobs[1:])
    assert jobs[1].estimate() == pytest.approx(300.0)  # ResNet-50 from SE-ResNet-50's wall time
    _run_folder(jobs[2].run_dir, 1)  # a third of its epochs done
    assert jobs[2].estimate() == pytest.approx(200.0)


def test_unknown_profile_or_command_fails_in_one_sentence(monkeypatch):
    with pytest.raises(campaign.CampaignError, match="'nosuch' profile.*merge the branch"):
        campaign.require_profile("nosuch", "headline")
    campaign.require_profile("quick", "headline")  # a known one passes


def test_bench_and_figures_skip_what_is_recorded(ctx):
    ctx.records = [
        {"kind": "benchmark", "device": "cuda:0", "settings": {"models": ["se_resnet50", "resnet50"]}},
    ]
    assert campaign.plan_bench(ctx)[0].skip
    ctx.records = [
        {"kind": "benchmark", "device": "cpu", "settings": {"models": ["se_resnet50", "resnet50"]}}
    ]
    assert not campaign.plan_bench(ctx)[0].skip
    (job,) = campaign.plan_figures(ctx)
    assert "headline stage on the same warm machine" in job.skip
    _run_folder(ctx.runs / "se_resnet50-cifar10-gpu-seed0", 3, finished=True)
    (job,) = campaign.plan_figures(ctx)
    assert job.skip is None and "papermill" in job.argv
    assert job.argv[job.argv.index("CHECKPOINT") + 1].endswith("se_resnet50-cifar10-gpu-seed0/checkpoint.pt")
    (ctx.root / "figures").mkdir()
    (ctx.root / "figures" / "06_fig6_class_excitations.json").write_text('{"model": "se_resnet50"}')
    assert campaign.plan_figures(ctx)[0].skip.startswith("figures/06_fig6")


# --------------------------------------------------------------------------- budgets and scheduler
class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_budget_keeps_its_reserve():
    clock = Clock()
    budget = Budget(540, reserve=60, clock=clock)
    assert budget.work_left() == 480 and budget.allows(None) and budget.allows(480) and not budget.allows(481)
    clock.now = 480
    assert budget.stopping() and not budget.allows(None)


class FakeProcess:
    """Finishes after ``seconds`` of the fake clock (writing its run's record), or stops when interrupted."""

    def __init__(self, job, clock, seconds, log):
        self.job, self.clock, self.end, self.rc = job, clock, clock() + seconds, None
        log.append(job.key)

    def poll(self):
        if self.rc is None and self.clock() >= self.end:
            self.rc = 0
            if self.job.run_dir:
                _run_folder(self.job.run_dir, 3, finished=True)
        return self.rc

    def interrupt(self):
        self.rc = 130

    def kill(self):
        self.rc = -9


def test_scheduler_respects_parallelism_state_budget_and_time(tmp_path):
    clock, started = Clock(), []
    runs = tmp_path / "runs"
    jobs = [
        Job(f"j{i}", [], run_dir=runs / f"j{i}", carry_state=True, state_bytes=size * MiB)
        for i, size in enumerate([10, 10, 10, 5])
    ]
    _run_folder(jobs[3].run_dir, 1)  # j3 resumes: it goes first, its state already counted
    seconds = {"j0": 100, "j1": 100, "j2": 1000, "j3": 50}
    finished = []
    jobs_mod.run_jobs(
        jobs,
        Budget(400, reserve=60, clock=clock),
        lambda job: FakeProcess(job, clock, seconds[job.key], started),
        max_parallel=3,
        state_budget=25 * MiB,
        grace=10,
        sleep=clock.sleep,
        log=lambda line: None,
        on_finish=finished.append,
    )
    status = {j.key: j.status for j in jobs}
    assert started[0] == "j3" and started[1:3] == ["j0", "j1"]  # j0 + j1 + j3 = 25 MiB; j2 must wait
    assert status == {"j0": "finished", "j1": "finished", "j2": "interrupted", "j3": "finished"}
    assert max(j.concurrent for j in jobs) <= 3 and [j.key for j in finished] == ["j3", "j0", "j1"]
    assert clock.now <= 400  # interrupted at 340 s of work, gone well before the command's end


def test_scheduler_does_not_start_what_cannot_finish(tmp_path):
    clock, started = Clock(), []
    long_job = Job("long", [], estimate=lambda: 1000.0)
    short_job = Job("short", [], estimate=lambda: 10.0)
    jobs_mod.run_jobs(
        [long_job, short_job],
        Budget(540, clock=clock),
        lambda job: FakeProcess(job, clock, 10, started),
        sleep=clock.sleep,
        log=lambda line: None,
    )
    assert started == ["short"] and long_job.status.startswith("not started: needs about 1000 s")
    assert short_job.status == "finished"


def test_state_budget_too_small_for_any_run_ends_cleanly(tmp_path):
    job = Job("big", [], run_dir=tmp_path / "big", carry_state=True, state_bytes=50 * MiB)
    jobs_mod.run_jobs(
        [job], Budget(540, clock=Clock()), lambda j: None, state_budget=10 * MiB, log=lambda s: None
    )
    assert job.status == "not started: its state would not fit the state budget"


# --------------------------------------------------------------------------- carry out, bundle back
def _git_repo(root: Path) -> None:
    root.mkdir(exist_ok=True)
    for args in (["init", "-q"], ["config", "user.email", "t@t"], ["config", "user.name", "t"]):
        subprocess.run(["git", "-C", str(root), *args], check=True)
    (root / "README.md").write_text("x\n")
    subprocess.run(["git", "-C", str(root), "add", "."], check=True)
    subprocess.run(["git", "-C", str(root), "commit", "-qm", "x"], check=True)


def test_prepare_carry_copies_the_pack_in_the_tools_layout(tmp_path):
    root, shared = tmp_path / "repo", tmp_path / "shared"
    _git_repo(root)
    for rel in transfer.PACK_FILES:
        (shared / rel).parent.mkdir(parents=True, exist_ok=True)
        (shared / rel).write_bytes(b"p" * 100)
    with pytest.raises(transfer.TransferError, match="does not ignore .gpu_carry"):
        transfer.prepare_carry(root, shared)
    (root / ".gitignore").write_text(".gpu_carry/\n.gpu_resume/\n.gpu_wheels/\n")
    summary = transfer.prepare_carry(root, shared)
    for rel in transfer.PACK_FILES:
        assert (root / ".gpu_carry" / "shared" / rel).read_bytes() == b"p" * 100
    info = json.loads((root / ".gpu_carry" / "commit.json").read_text())
    assert info["commit"] == summary["commit"] and summary["commit"].endswith("+dirty") is False
    assert info["state_room_bytes"] == transfer.state_room(summary["tree"], 300)
    assert transfer.device_commit(root) == info["commit"]
    (root / "README.md").write_text("changed on the way\n")
    assert transfer.device_commit(root) == info["commit"] + "+modified"
    with pytest.raises(transfer.TransferError, match="pass --shared"):
        transfer.prepare_carry(root, tmp_path / "nowhere")


def test_restore_state_takes_the_more_advanced_copy(tmp_path):
    carried = tmp_path / ".gpu_resume"
    _run_folder(carried / "a", 4)
    _run_folder(carried / "b", 2)
    runs = tmp_path / ".gpu_state" / "runs"
    _run_folder(runs / "b", 3)  # the machine is ahead: keep its copy
    assert campaign.restore_state(tmp_path, log=lambda s: None) == ["a"]
    assert (
        Job("a", [], run_dir=runs / "a").epochs_done == 4
        and Job("b", [], run_dir=runs / "b").epochs_done == 3
    )


def _fake_command(ctx) -> None:
    """What a small-stage command leaves: a record, weights, a figure, a log, runs on the machine."""
    for folder in ("results", "pretrained", "figures", "logs"):
        (ctx.work / folder).mkdir(parents=True, exist_ok=True)
    record = _record("resnet20", "he2016", 0, commit="unknown", environment={"commit": "unknown"})
    (ctx.work / "results" / "train_resnet20.json").write_text(json.dumps(record))
    (ctx.work / "pretrained" / "resnet20_cifar10_3ep_seed0.pt").write_bytes(b"fp16")
    (ctx.work / "figures" / "06_x.png").write_bytes(b"png")
    (ctx.work / "logs" / "resnet20.log").write_bytes(b"l" * (device.LOG_TAIL + 10))
    _run_folder(ctx.runs / "resnet20-cifar10-he2016-seed0", 3, finished=True)
    _run_folder(ctx.runs / "se_resnet56-cifar10-he2016-seed0", 2, size=3 * MiB)
    _run_folder(ctx.runs / "resnet110-cifar10-he2016-seed0", 1, size=6 * MiB)


def test_pack_then_collect_merges_and_is_idempotent(ctx, tmp_path):
    _fake_command(ctx)
    ctx.commit = "abc123"
    campaign.stamp_records(
        ctx, [Job("resnet20-cifar10-he2016-seed0", [], concurrent=8)], {"gpu": "H100"}, "small"
    )
    out = tmp_path / "out"
    out.mkdir()
    packed = campaign.pack(ctx, out, state_budget=4 * MiB, log=lambda s: None)
    assert packed["state_runs"] == ["se_resnet56-cifar10-he2016-seed0"]  # most epochs first, within 4 MiB
    assert packed["left_on_device"] == ["resnet110-cifar10-he2016-seed0"]
    assert packed["finished_runs"] == ["resnet20-cifar10-he2016-seed0"]
    (out / "campaign.json").write_text(
        json.dumps({"stage": "small", "started": "2026-11-24T01:00:00", **packed})
    )
    assert len(list(out.iterdir())) <= transfer.MAX_FILES_BACK
    assert all((out / n).stat().st_size <= transfer.MAX_FILE_BYTES for n in packed["files"])

    repo = tmp_path / "repo"
    (repo / ".gpu_resume" / "resnet20-cifar10-he2016-seed0").mkdir(parents=True)  # finished now
    done = transfer.collect(out, repo)
    record = json.loads((repo / "results" / "train_resnet20.json").read_text())
    assert record["commit"] == record["environment"]["commit"] == "abc123"
    assert record["gpu_campaign"] == {"gpu": "H100", "stage": "small", "concurrent_runs": 8}
    assert (repo / "pretrained" / "resnet20_cifar10_3ep_seed0.pt").read_bytes() == b"fp16"
    assert (repo / "figures" / "06_x.png").is_file()
    log = next((repo / "build" / "gpu_campaign").rglob("resnet20.log")).read_bytes()
    assert len(log) < device.LOG_TAIL + 100 and log.startswith(b"[... cut")
    state = repo / ".gpu_resume"
    assert sorted(p.name for p in state.iterdir()) == ["se_resnet56-cifar10-he2016-seed0"]
    assert (state / "se_resnet56-cifar10-he2016-seed0" / "checkpoint.pt").stat().st_size == 3 * MiB
    assert done["results"] == ["results/train_resnet20.json"] and done["state"]
    again = transfer.collect(out, repo)  # the same fetch twice: nothing new
    assert again["results"] == [] and again["pretrained"] == [] and len(again["kept"]) == 2


def test_collect_refuses_a_damaged_or_foreign_folder(ctx, tmp_path):
    with pytest.raises(transfer.TransferError, match="no campaign.json"):
        transfer.collect(tmp_path, tmp_path / "repo")
    _fake_command(ctx)
    out = tmp_path / "out"
    out.mkdir()
    packed = campaign.pack(ctx, out, state_budget=40 * MiB, log=lambda s: None)
    (out / "campaign.json").write_text(json.dumps({"stage": "small", "started": "t", **packed}))
    assert len([n for n in packed["files"] if n.startswith("state.tar.")]) == 1
    (out / "state.tar.00").write_bytes(b"cut short")
    with pytest.raises(transfer.TransferError, match="damaged"):
        transfer.collect(out, tmp_path / "repo")
    assert not (tmp_path / "repo" / "results").exists()


def test_state_larger_than_one_file_comes_back_in_pieces(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    names = transfer.write_pieces(b"0123456789", out, "state.tar.", piece=4)
    assert names == ["state.tar.00", "state.tar.01", "state.tar.02"]
    assert b"".join((out / n).read_bytes() for n in names) == b"0123456789"


# --------------------------------------------------------------------------- whole stages, faked
def test_smoke_record_from_junit(ctx):
    (ctx.work / "logs").mkdir(parents=True)
    (ctx.work / "logs" / "smoke.xml").write_text(
        '<testsuites><testsuite tests="9" failures="1" errors="0" skipped="2"/></testsuites>'
    )
    ctx.commit = "abc"
    job = Job("smoke", ["python", "-m", "pytest"], seconds=60.0)
    assert campaign.smoke_record(ctx, job, {"cuda_available": False}) is None
    record = json.loads(campaign.smoke_record(ctx, job, {"cuda_available": True, "gpu": "H100"}).read_text())
    assert (record["passed"], record["failed"], record["skipped"], record["commit"]) == (6, 1, 2, "abc")
    ctx.records = [record | {"failed": 0}]
    assert campaign.plan_smoke(ctx)[0].skip


def test_dry_run_prints_the_commands_and_runs_nothing(tmp_path, capsys):
    assert campaign.main(["run", "bench", "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "-m senet_lib bench --profile-trace --out" in out and "dry run: nothing was started" in out
    assert not (tmp_path / "out").exists()
    assert campaign.main(["run", "headline", "--out", str(tmp_path / "o"), "--dry-run", "--seeds", "0"]) in (
        0,
        2,
    )
    assert "--profile gpu --model se_resnet50" in capsys.readouterr().out


def test_small_stage_end_to_end_with_fake_trainings(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    (root / "data" / "cifar-10-batches-py").mkdir(parents=True)
    (root / "data" / "cifar-10-batches-py" / "batches.meta").write_bytes(b"")
    monkeypatch.setattr(campaign, "CHECKS", {})
    monkeypatch.setattr(campaign, "state_bytes", lambda model: 3 * MiB)
    monkeypatch.setattr(campaign, "device_info", lambda python: {"gpu": "fake", "cuda_available": True})
    monkeypatch.setattr(campaign, "_commit", lambda root: "abc")
    exported = []
    monkeypatch.setattr(campaign, "export_weights", lambda ctx, job, log: exported.append(job.key))
    clock = Clock()

    def launch(job):  # ResNet-20s finish in 100 s; the rest train one epoch, then are interrupted
        _run_folder(job.run_dir, 1, size=MiB)
        return FakeProcess(job, clock, 100 if "resnet20" in job.key else 10_000, [])

    out = tmp_path / "out"
    rc = campaign.run_stages(
        ("small",), out, root=root, seeds=(0, 1), state_budget_mib=39, launch=launch, log=lambda s: None,
        clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    manifest = json.loads((out / "campaign.json").read_text())
    status = {j["key"]: j["status"] for j in manifest["jobs"]}
    assert rc == 0 and sum(s == "finished" for s in status.values()) == 4, status
    assert sorted(exported) == ["resnet20-cifar10-he2016-seed0", "se_resnet20-cifar10-he2016-seed0"]
    assert manifest["state_runs"] and set(manifest["state_runs"]) <= {
        k for k, s in status.items() if s != "finished"
    }
    assert manifest["elapsed_s"] <= 540 and set(manifest["files"]) <= {p.name for p in out.iterdir()}


def test_a_failed_stage_stops_the_next_and_finished_runs_are_not_redone(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    monkeypatch.setattr(campaign, "device_info", lambda python: {"cuda_available": False})
    monkeypatch.setattr(campaign, "_commit", lambda root: "abc")
    clock, started = Clock(), []

    class Failing(FakeProcess):
        def poll(self):
            self.rc = 1
            return self.rc

    def launch(job):
        return Failing(job, clock, 0, started)

    out = tmp_path / "out"
    rc = campaign.run_stages(
        ("smoke", "bench"), out, root=root, launch=launch, log=lambda s: None, clock=clock, sleep=clock.sleep
    )
    manifest = json.loads((out / "campaign.json").read_text())
    assert rc == 1 and started == ["smoke"] and manifest["stage"] == "smoke+bench"
    assert [j["status"] for j in manifest["jobs"]] == [
        "failed",
        "not started: an earlier stage of this command failed (fix it first)",
    ]
    ctx = campaign.Context(root, tmp_path / "w")
    _run_folder(ctx.runs / "se_resnet50-cifar10-gpu-seed0", 3, finished=True)
    se, plain = campaign.plan_headline(ctx)
    assert se.skip.startswith("finished on this machine") and plain.skip is None


def test_a_large_bundle_comes_back_in_pieces(ctx, tmp_path, monkeypatch):
    monkeypatch.setattr(transfer, "PIECE_BYTES", 64 * 1024)
    _fake_command(ctx)
    out = tmp_path / "out"
    out.mkdir()
    (ctx.work / "pretrained" / "big_seed0.pt").write_bytes(b"x" * 200_000)  # over 3 pieces of 64 KiB
    with pytest.raises(campaign.CampaignError, match="even without logs"):
        campaign.pack(ctx, out, state_budget=0, log=lambda s: None)
    weights = bytes(range(256)) * 560  # 143 kB: three pieces once the log is left out
    (ctx.work / "pretrained" / "big_seed0.pt").write_bytes(weights)
    packed = campaign.pack(ctx, out, state_budget=0, log=lambda s: None)
    bundle = [n for n in packed["files"] if n.startswith("bundle.tar.")]
    assert len(bundle) == 3 and packed["state_runs"] == []
    assert any(n.endswith(".log") for n in packed["dropped_from_bundle"])  # the logs made room
    (out / "campaign.json").write_text(json.dumps({"stage": "small", "started": "t", **packed}))
    transfer.collect(out, tmp_path / "repo")
    assert (tmp_path / "repo" / "pretrained" / "big_seed0.pt").read_bytes() == weights


def test_figures_without_papermill_or_its_wheels_says_what_to_carry(ctx, monkeypatch):
    ctx.python = sys.executable
    real_run = subprocess.run

    def no_papermill(argv, **kwargs):  # this machine has no papermill, whatever is installed here
        if argv[-1] == "import papermill, ipykernel":
            return subprocess.CompletedProcess(
                argv, 1, "", "ModuleNotFoundError: No module named 'papermill'"
            )
        return real_run(argv, **kwargs)

    monkeypatch.setattr(device.subprocess, "run", no_papermill)
    with pytest.raises(
        campaign.CampaignError, match="prepare-carry --wheels.*name .gpu_wheels in the device"
    ):
        campaign.ensure_papermill(ctx, [], log=lambda s: None)


def test_cifar_is_unpacked_from_the_carried_pack_once(ctx):
    ctx.python = sys.executable
    with pytest.raises(campaign.CampaignError, match="prepare-carry.*name .gpu_carry in the device"):
        campaign.ensure_cifar(ctx, log=lambda s: None)
    tool = ctx.root / ".gpu_carry" / "shared" / "tools" / "cifar10_jpeg.py"
    tool.parent.mkdir(parents=True)
    tool.write_text(  # a stand-in for the shared unpacker: same argument, same layout, counts its runs
        "import sys, pathlib\n"
        "out = pathlib.Path(sys.argv[1]) / 'cifar-10-batches-py'\n"
        "out.mkdir(parents=True, exist_ok=True)\n"
        "(out / 'batches.meta').write_text('meta')\n"
        "with open(pathlib.Path(__file__).with_name('runs'), 'a') as f: f.write('x')\n"
    )
    campaign.ensure_cifar(ctx, log=lambda s: None)
    campaign.ensure_cifar(ctx, log=lambda s: None)
    assert (ctx.root / "data" / "cifar-10-batches-py" / "batches.meta").read_text() == "meta"
    assert tool.with_name("runs").read_text() == "x"  # unpacked once: the second call found it there
