"""Class separation, its permutation test and bootstrap, the untrained reference and knock-out p-values."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import senet_lib  # noqa: E402
from senet_lib import create_model  # noqa: E402
from senet_lib import excitation as ex  # noqa: E402
from senet_lib.plots import excitation as px  # noqa: E402
from senet_lib.plots import significance as ps  # noqa: E402


def samples(
    effects: dict[str, float], per_class: int = 30, classes: int = 4, channels: int = 8, seed: int = 0
):
    """Per-image excitations where class k shifts every channel of a block by ``effect * k``."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    rng.shuffle(labels)
    per_block = {
        name: 0.5 + effect * labels[:, None] + 0.05 * rng.standard_normal((len(labels), channels))
        for name, effect in effects.items()
    }
    return per_block, labels, classes


def stats_of(per_block, labels, classes) -> ex.ExcitationStats:
    with torch.no_grad():
        count = np.bincount(labels, minlength=classes)
        mean = {b: np.stack([s[labels == k].mean(0) for k in range(classes)]) for b, s in per_block.items()}
        std = {
            b: np.stack([s[labels == k].std(0, ddof=1) for k in range(classes)]) for b, s in per_block.items()
        }
    zeros = {b: np.zeros_like(m, dtype=np.int64) for b, m in mean.items()}
    return ex.ExcitationStats(
        list(per_block), [str(k) for k in range(classes)], count, mean, std, zeros, zeros
    )


def test_separation_is_the_gap_between_class_means_in_units_of_s():
    labels = np.repeat([0, 1], 10)
    s = np.where(labels[:, None] == 1, 0.7, 0.4) * np.ones((20, 5))  # no spread within a class
    assert ex.separation_of_samples(s, labels, 2) == pytest.approx(0.3)
    assert ex.separation_of_samples(np.full((20, 5), 0.6), labels, 2) == pytest.approx(0.0)
    stats = stats_of({"SE_2_1": s}, labels, 2)
    assert ex.class_separation(stats, "SE_2_1") == pytest.approx(0.3)
    # the ratio is infinite here (no spread within a class); the separation stays a gate difference
    assert ex.class_specificity(stats, "SE_2_1") > 1e6


def test_separation_from_samples_equals_the_one_from_streamed_statistics():
    per_block, labels, classes = samples({"SE_2_1": 0.0, "SE_4_1": 0.05})
    stats = stats_of(per_block, labels, classes)
    for block, s in per_block.items():
        for debias in (True, False):
            assert ex.separation_of_samples(s, labels, classes, debias) == pytest.approx(
                ex.class_separation(stats, block, debias), abs=1e-12
            )
    # the pairwise formula of class_specificity and the K x C identity agree
    spread = np.sqrt(np.mean(stats.std["SE_4_1"] ** 2))
    assert ex.class_specificity(stats, "SE_4_1") == pytest.approx(
        ex.class_separation(stats, "SE_4_1") / spread
    )


def test_the_permutation_test_finds_a_class_effect_and_none_where_there_is_none():
    per_block, labels, classes = samples({"SE_2_1": 0.0, "SE_3_1": 0.0, "SE_4_1": 0.05})
    report = ex.report_from_samples(per_block, labels, classes, permutations=99, resamples=99, network="toy")
    assert report.blocks["SE_4_1"].class_specific and report.blocks["SE_4_1"].p_value == pytest.approx(0.01)
    assert not report.blocks["SE_2_1"].class_specific
    assert report.specific_blocks() == ["SE_4_1"]
    low, high = report.blocks["SE_4_1"].interval
    assert low < report.blocks["SE_4_1"].observed < high
    assert report.blocks["SE_2_1"].threshold < report.blocks["SE_4_1"].observed
    assert list(report.groups) == ["stage 2", "stage 3", "stage 4"]
    frame = report.to_frame()
    assert frame.loc["SE_4_1", "class_specific"] and frame.loc["SE_2_1", "group"] == "stage 2"
    assert not frame["frozen"].any()


def test_compare_reads_an_interval_against_the_margin():
    assert ex.compare(-0.005, 0.004) == "alike"
    assert ex.compare(0.001, 0.004) == "alike"  # real but smaller than the margin: alike, not "higher"
    assert ex.compare(0.01, 0.05) == "higher" and ex.compare(-0.05, -0.01) == "lower"
    assert ex.compare(-0.01, 0.05) == "undecided"
    assert ex.compare(-0.01, 0.05, margin=0.1) == "alike"


def test_the_depth_verdict_reads_the_curve_stage_by_stage():
    step = ex.report_from_samples(
        *samples({"SE_2_1": 0.0, "SE_3_1": 0.0, "SE_4_1": 0.05}), permutations=19, resamples=99, network="toy"
    )
    readings = [d.reading for d in step.stage_steps()]
    assert readings == ["alike", "higher"], readings
    assert (
        "not a steady rise" in step.depth_verdict() and "stage 4 higher than stage 3" in step.depth_verdict()
    )
    rises = ex.report_from_samples(
        *samples({"SE_2_1": 0.0, "SE_3_1": 0.03, "SE_4_1": 0.06}), permutations=19, resamples=99
    )
    assert [d.reading for d in rises.stage_steps()] == ["higher", "higher"]
    assert "rises stage by stage" in rises.depth_verdict()
    falls = ex.report_from_samples(*samples({"SE_2_1": 0.05, "SE_4_1": 0.0}), permutations=19, resamples=99)
    assert [d.reading for d in falls.stage_steps()] == ["lower"] and "LOWER" in falls.depth_verdict()
    flat = ex.report_from_samples(*samples({"SE_2_1": 0.03, "SE_4_1": 0.03}), permutations=19, resamples=99)
    assert "no stage differs from the one before" in flat.depth_verdict()
    weak = ex.report_from_samples(
        *samples({"SE_2_1": 0.0, "SE_4_1": 0.01}, per_class=100), permutations=19, resamples=99
    )  # separation 1.83 x 0.01: real, but under the 0.02 margin
    assert "hardly depend on the class anywhere" in weak.depth_verdict()


def test_the_peak_the_last_block_and_frozen_blocks():
    per_block, labels, classes = samples({"SE_2_1": 0.02, "SE_4_1": 0.03, "SE_4_2": 0.08, "SE_4_3": 0.01})
    per_block["SE_2_2"] = np.full_like(per_block["SE_2_1"], 0.46)  # a gate that never moves
    per_block = {name: per_block[name] for name in ("SE_2_1", "SE_2_2", "SE_4_1", "SE_4_2", "SE_4_3")}
    report = ex.report_from_samples(per_block, labels, classes, permutations=19, resamples=99, network="toy")
    assert report.frozen_blocks() == ["SE_2_2"] and report.blocks["SE_2_2"].frozen
    assert report.group_mean("stage 2", exclude=["SE_2_2"]) == pytest.approx(report.blocks["SE_2_1"].observed)
    assert report.group_mean("stage 2") < report.group_mean("stage 2", exclude=["SE_2_2"])
    assert report.peak() == ("SE_4_2", 1.0)
    fall = report.block_difference("SE_4_3", "SE_4_2")
    assert fall.reading == "lower" and fall.value < 0
    verdict = report.depth_verdict()
    assert "SE_2_2 left out: frozen" in verdict and "largest in SE_4_2" in verdict
    assert "falls back below SE_4_2" in verdict
    with pytest.raises(ValueError, match="left out"):
        report.group_mean("stage 2", exclude=["SE_2_1", "SE_2_2"])


def test_learned_beyond_a_reference_and_names_without_stages():
    trained = ex.report_from_samples(*samples({"SE_2_1": 0.0, "SE_4_1": 0.05}), permutations=19, resamples=99)
    untrained = ex.report_from_samples(
        *samples({"SE_2_1": 0.0, "SE_4_1": 0.0}, seed=1), permutations=19, resamples=99
    )
    diff, low, high = trained.learned_beyond(untrained)
    assert diff > 0.05 and 0 < low < high  # percentile intervals of a clipped statistic need not hold diff
    by_stage = trained.learned_by_stage(untrained)
    assert [d.a for d in by_stage] == ["stage 2", "stage 4"]
    assert [d.reading for d in by_stage] == ["alike", "higher"]
    assert "stage 4 MORE" in trained.learned_verdict(
        untrained
    ) and "stage 2 ALIKE" in trained.learned_verdict(untrained)
    with pytest.raises(ValueError, match="No group"):
        trained.learned_beyond(untrained, "stage 9")
    named = ex.report_from_samples(
        *samples({"a.se": 0.0, "b.se": 0.0, "c.se": 0.05}), permutations=19, resamples=19
    )
    assert list(named.groups) == ["first third", "middle third", "last third"]
    with pytest.raises(ValueError, match="at least 19"):
        ex.report_from_samples(*samples({"SE_2_1": 0.0}), permutations=5)


def test_separation_report_on_a_model_matches_its_statistics():
    torch.manual_seed(0)
    model = create_model("se_resnet20", num_classes=3)
    images = torch.randn(30, 3, 32, 32)
    labels = torch.arange(30) % 3
    report = ex.separation_report(model, (images, labels), images_per_class=10, permutations=19, resamples=19)
    stats = ex.class_excitations(model, (images, labels), images_per_class=10)
    assert list(report.blocks) == stats.blocks
    for block in stats.blocks:
        assert report.blocks[block].observed == pytest.approx(ex.class_separation(stats, block), abs=1e-6)


def test_untrained_like_is_the_same_architecture_with_calibrated_batchnorm():
    from senet_lib.data import make_synthetic

    data = make_synthetic(n_train=64, n_test=32, seed=0)
    trained = create_model("se_resnet20", num_classes=data.num_classes, reduction=8)
    for p in trained.parameters():
        p.data.add_(1.0)
    fresh = ex.untrained_like(trained, data, seed=0, calibration_images=64)
    assert fresh.arch_config == trained.arch_config and not fresh.training
    assert not torch.equal(fresh.fc.weight, trained.fc.weight)
    norm = next(m for m in fresh.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert norm.momentum == 0.1 and int(norm.num_batches_tracked) == 1
    assert not torch.allclose(norm.running_mean, torch.zeros_like(norm.running_mean))
    plain = ex.untrained_like(trained, seed=0)
    assert torch.equal(plain.fc.weight, fresh.fc.weight)  # the same seed, the same initialisation
    with pytest.raises(ValueError, match="create_model"):
        ex.untrained_like(torch.nn.Conv2d(3, 3, 1))


def test_the_binomial_interval_is_clopper_pearsons():
    low, high = ex.binomial_interval(5, 10)
    assert (low, high) == (pytest.approx(0.18709, abs=1e-4), pytest.approx(0.81291, abs=1e-4))
    assert ex.binomial_interval(0, 49) == (0.0, pytest.approx(1 - 0.025 ** (1 / 49)))
    assert ex.binomial_interval(49, 49) == (pytest.approx(0.025 ** (1 / 49)), 1.0)
    with pytest.raises(ValueError):
        ex.binomial_interval(3, 2)


def test_knockout_verdict_carries_the_p_values_uncertainty():
    clear = ex.KnockoutResult(
        "SE_4_3", 0, 4, [0, 1, 2, 3], 0.9, 0.5, [0.8 + 0.001 * i for i in range(99)], 100
    )
    assert clear.worse_draws == 0 and clear.p_value == pytest.approx(1 / 100)
    assert clear.p_interval[1] < 0.05 and "MORE than random" in clear.verdict()
    assert "on 100 images (1.0 points each)" in clear.verdict()
    # the same result with 49 draws: p = 0.02, yet p's interval reaches past 0.05, so it cannot decide
    short = ex.KnockoutResult("SE_4_3", 0, 4, [0], 0.9, 0.5, [0.8 + 0.001 * i for i in range(49)])
    assert short.p_value == pytest.approx(1 / 50) and "UNDECIDED" in short.verdict()
    assert "at least 72" in short.verdict()
    low, high = short.random_interval
    assert 0.8 <= low < high <= 0.849
    tied = ex.KnockoutResult("SE_4_3", 0, 4, [0], 0.9, 0.851, [0.8 + 0.005 * i for i in range(19)])
    assert tied.p_value == pytest.approx(12 / 20) and "did NOT" in tied.verdict()
    few = ex.KnockoutResult("SE_4_3", 0, 4, [0], 0.9, 0.1, [0.8, 0.85])
    assert "Too few random draws" in few.verdict()


def test_knockout_comparison_counts_the_images_it_measures():
    torch.manual_seed(0)
    model = create_model("se_resnet20", num_classes=3)
    images, labels = torch.randn(30, 3, 32, 32), torch.arange(30) % 3
    stats = ex.class_excitations(model, (images, labels), images_per_class=10)
    result = ex.knockout_comparison(model, (images, labels), stats, "SE_4_1", 1, k=2, draws=3)
    assert result.images == 10 and len(result.random_off) == 3
    capped = ex.knockout_comparison(model, (images, labels), stats, "SE_4_1", 1, k=2, draws=1, max_images=4)
    assert capped.images == 4


def test_hidden_unit_activity_finds_a_dead_bottleneck():
    torch.manual_seed(0)
    model = create_model("se_resnet20", num_classes=3)
    images = torch.randn(12, 3, 32, 32)
    dead = model.layer1[1].se.excitation.fc1  # SE_2_2: 16 channels, r = 16, one hidden unit
    assert dead.out_features == 1
    with torch.no_grad():
        dead.weight.zero_()
        dead.bias.fill_(-1.0)  # W1 z + b1 = -1 for every image: the ReLU never passes anything
    activity = ex.hidden_unit_activity(model, images)
    assert activity["SE_2_2"].tolist() == [0.0]
    with torch.no_grad():
        dead.bias.fill_(1.0)
    assert ex.hidden_unit_activity(model, images, blocks=["SE_2_2"])["SE_2_2"].tolist() == [1.0]
    widths = {name: b.excitation.fc1.out_features for name, b in senet_lib.se_blocks(model).items()}
    assert {name: a.shape for name, a in activity.items()} == {name: (w,) for name, w in widths.items()}


def test_significance_plots_and_the_chance_annotations():
    per_block, labels, classes = samples({"SE_2_1": 0.0, "SE_4_1": 0.05})
    report = ex.report_from_samples(per_block, labels, classes, permutations=19, resamples=19, network="toy")
    fig = ps.plot_separation(report, reference=report, data_label="noise")
    ax = fig.axes[0]
    assert "toy" in fig.get_suptitle() and len(ax.get_xticklabels()) == 2
    plt.close(fig)
    knock = ex.KnockoutResult("SE_4_1", 0, 2, [0, 1], 0.9, 0.5, [0.8] * 19)
    fig = ps.plot_knockout(knock, "a", network="toy")
    assert "p = 0.050" in fig.get_suptitle()
    plt.close(fig)

    stats = stats_of(per_block, labels, classes)
    stats.metadata.update(model="toy_net", network="3 epochs, 41.0 % test", dataset="noise")
    fig = px.plot_saturation(stats)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("no gate value above 0.95" in t for t in texts), "an empty saturation chart must say so"
    assert "toy_net (3 epochs, 41.0 % test)" in fig.get_suptitle()
    plt.close(fig)

    fig = px.plot_excitation_heatmaps(stats, relative=True)
    limits = {
        tuple(np.round(im.get_clim(), 9))
        for ax in fig.axes
        for im in ax.collections
        if im.get_array() is not None
    }
    assert len(limits) == 1, "every heatmap panel must share one colour scale"
    plt.close(fig)
