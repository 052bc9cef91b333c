"""Class separation, its permutation test and bootstrap, the untrained reference and knock-out p-values."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

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
    assert report.depth_verdict().startswith("toy: separation RISES with depth")
    assert "hardly depend on the class" not in report.depth_verdict()  # 0.05 per class step is not small
    weak = ex.report_from_samples(
        *samples({"SE_2_1": 0.0, "SE_4_1": 0.01}, per_class=100), permutations=19, resamples=99
    )  # separation 1.83 x 0.01
    assert "RISES" in weak.depth_verdict() and "hardly depend on the class anywhere" in weak.depth_verdict()
    frame = report.to_frame()
    assert frame.loc["SE_4_1", "class_specific"] and frame.loc["SE_2_1", "group"] == "stage 2"


def test_the_depth_verdict_follows_the_interval():
    falls = ex.report_from_samples(*samples({"SE_2_1": 0.05, "SE_4_1": 0.0}), permutations=19, resamples=99)
    assert "FALLS" in falls.depth_verdict()
    flat = ex.report_from_samples(*samples({"SE_2_1": 0.03, "SE_4_1": 0.03}), permutations=19, resamples=99)
    assert "NO CLEAR" in flat.depth_verdict()
    assert flat.rise_interval[0] < 0 < flat.rise_interval[1]


def test_learned_beyond_a_reference_and_names_without_stages():
    trained = ex.report_from_samples(*samples({"SE_2_1": 0.0, "SE_4_1": 0.05}), permutations=19, resamples=99)
    untrained = ex.report_from_samples(
        *samples({"SE_2_1": 0.0, "SE_4_1": 0.0}, seed=1), permutations=19, resamples=99
    )
    diff, low, high = trained.learned_beyond(untrained)
    assert diff > 0.05 and 0 < low < high  # percentile intervals of a clipped statistic need not hold diff
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


def test_knockout_p_value_interval_and_verdict():
    result = ex.KnockoutResult("SE_4_3", 0, 4, [0, 1, 2, 3], 0.9, 0.5, [0.8 + 0.005 * i for i in range(19)])
    assert result.p_value == pytest.approx(1 / 20)
    low, high = result.random_interval
    assert 0.8 <= low < high <= 0.89
    assert "MORE than random" in result.verdict()
    tied = ex.KnockoutResult("SE_4_3", 0, 4, [0], 0.9, 0.851, [0.8 + 0.005 * i for i in range(19)])
    assert tied.p_value == pytest.approx(12 / 20) and "did NOT" in tied.verdict()
    few = ex.KnockoutResult("SE_4_3", 0, 4, [0], 0.9, 0.1, [0.8, 0.85])
    assert "Too few random draws" in few.verdict()


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
