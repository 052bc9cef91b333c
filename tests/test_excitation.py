"""Per-class excitation statistics (senet_lib.excitation) and their plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from senet_lib import create_model, override_gate, se_blocks  # noqa: E402
from senet_lib import excitation as ex  # noqa: E402
from senet_lib.plots import excitation as px  # noqa: E402

NUM_CLASSES = 5


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    net = create_model("se_resnet20", num_classes=NUM_CLASSES)
    # Give BatchNorm non-trivial running statistics, so eval mode differs from train mode.
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn(16, 3, 32, 32))
    return net.eval()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(23, 3, 32, 32, generator=generator)
    # Class 3 has a single image (std undefined), class 4 none at all.
    labels = torch.tensor([0, 1, 2] * 7 + [3, 0])
    return images, labels


def plain_excitations(model: torch.nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every block's s for ``images``, kept in full by a plain forward hook (the reference)."""
    out: dict[str, torch.Tensor] = {}
    handles = [
        block.gate.register_forward_hook(lambda _m, _i, s, name=name: out.__setitem__(name, s.clone()))
        for name, block in se_blocks(model).items()
    ]
    try:
        with torch.no_grad():
            model.eval()(images)
    finally:
        for handle in handles:
            handle.remove()
    return out


def make_stats(means: np.ndarray, stds: np.ndarray, count: int = 20) -> ex.ExcitationStats:
    """Hand-made statistics of one block ``SE_4_1`` (means and stds ``[K, C]``)."""
    k, c = means.shape
    zeros = np.zeros((k, c), dtype=np.int64)
    return ex.ExcitationStats(
        blocks=["SE_4_1"],
        classes=[f"c{i}" for i in range(k)],
        count=np.full(k, count),
        mean={"SE_4_1": means},
        std={"SE_4_1": stds},
        high={"SE_4_1": zeros},
        low={"SE_4_1": zeros},
    )


# --------------------------------------------------------------------------- streaming statistics
def test_streaming_stats_equal_a_plain_loop_over_stored_activations(model, batch):
    images, labels = batch
    splits = [(0, 5), (5, 6), (6, 17), (17, 23)]  # uneven batches, one of size 1
    with ex.ExcitationRecorder(model) as rec:
        for start, stop in splits:
            rec.update(images[start:stop], labels[start:stop])
    stats = rec.stats()
    # The same batches through a plain hook (float32 convolutions depend slightly on batch size).
    parts = [plain_excitations(model, images[start:stop]) for start, stop in splits]
    reference = {name: torch.cat([p[name] for p in parts]) for name in parts[0]}

    assert stats.blocks == list(se_blocks(model))
    np.testing.assert_array_equal(stats.count, [8, 7, 7, 1, 0])
    for name, s in reference.items():
        s = s.double()
        for k in range(NUM_CLASSES):
            rows = s[labels == k]
            if len(rows) == 0:
                assert np.isnan(stats.mean[name][k]).all()
                continue
            np.testing.assert_allclose(stats.mean[name][k], rows.mean(0).numpy(), rtol=1e-6, atol=1e-9)
            if len(rows) > 1:
                np.testing.assert_allclose(stats.std[name][k], rows.std(0).numpy(), rtol=1e-5, atol=1e-9)
            else:
                assert np.isnan(stats.std[name][k]).all()
            np.testing.assert_array_equal(stats.high[name][k], (rows > ex.SATURATION_HIGH).sum(0).numpy())
            np.testing.assert_array_equal(stats.low[name][k], (rows < ex.SATURATION_LOW).sum(0).numpy())
        np.testing.assert_allclose(stats.all_class_mean(name), s.mean(0).numpy(), rtol=1e-6)
        np.testing.assert_allclose(stats.all_class_std(name), s.std(0).numpy(), rtol=1e-5)


def test_recorder_keeps_no_activations_and_records_only_chosen_blocks(model, batch):
    images, labels = batch
    with ex.ExcitationRecorder(model, blocks=["SE_2_3", "SE_4_3"]) as rec:
        rec.update(images, labels)
    stats = rec.stats()
    assert stats.blocks == ["SE_2_3", "SE_4_3"]
    assert stats.mean["SE_2_3"].shape == (NUM_CLASSES, 16)
    assert stats.mean["SE_4_3"].shape == (NUM_CLASSES, 64)
    # Running moments only: memory is [K, C] per block whatever the number of images.
    moments = rec._moments["SE_4_3"]
    assert moments.mean.shape == moments.m2.shape == (NUM_CLASSES, 64)


def test_hooks_removed_and_modes_restored_after_exit_and_after_exception(model, batch):
    images, labels = batch
    model.train()
    model.layer1[0].bn1.eval()  # a submodule in its own mode must keep it
    expected = plain_excitations(model, images)  # (plain_excitations leaves the model in eval)
    model.train()
    model.layer1[0].bn1.eval()
    with torch.no_grad():
        before = model.eval()(images)
    model.train()
    model.layer1[0].bn1.eval()

    with ex.ExcitationRecorder(model) as rec:
        assert not model.training
        assert all(len(b.gate._forward_hooks) == 1 for b in se_blocks(model).values())
        rec.update(images[:4], labels[:4])
    assert all(len(b.gate._forward_hooks) == 0 for b in se_blocks(model).values())
    assert model.training and not model.layer1[0].bn1.training

    with pytest.raises(RuntimeError, match="boom"), ex.ExcitationRecorder(model):
        raise RuntimeError("boom")
    assert all(len(b.gate._forward_hooks) == 0 for b in se_blocks(model).values())
    assert model.training and not model.layer1[0].bn1.training

    # The model without labels inside the context is an error, and the hooks still go away.
    with pytest.raises(RuntimeError, match="update"), ex.ExcitationRecorder(model):
        model(images[:2])
    assert all(len(b.gate._forward_hooks) == 0 for b in se_blocks(model).values())

    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(images), before)
    after = plain_excitations(model, images)
    for name in expected:
        torch.testing.assert_close(after[name], expected[name])


def test_recorder_rejects_bad_input(model, batch):
    images, labels = batch
    with pytest.raises(ValueError, match="no SE blocks"):
        ex.ExcitationRecorder(create_model("resnet20"))
    with pytest.raises(ValueError, match=r"no squeeze \(se_squeeze='none'\).*not one value per channel"):
        ex.ExcitationRecorder(create_model("se_resnet20", se_squeeze="none"))
    with pytest.raises(ValueError, match="SE_9_9"):
        ex.ExcitationRecorder(model, blocks=["SE_9_9"])
    with ex.ExcitationRecorder(model) as rec:
        with pytest.raises(ValueError, match="labels"):
            rec.update(images[:3], labels[:2])
        with pytest.raises(ValueError, match="0 … 4"):
            rec.update(images[:2], torch.tensor([0, 7]))
    with pytest.raises(RuntimeError, match="No excitations"):
        ex.ExcitationRecorder(model).stats()


# --------------------------------------------------------------------------- names and panels
def test_block_names_follow_the_paper():
    names50 = list(se_blocks(create_model("se_resnet50")))
    expected50 = [
        f"SE_{s}_{b}" for s, n in zip((2, 3, 4, 5), (3, 4, 6, 3), strict=True) for b in range(1, n + 1)
    ]
    assert names50 == expected50 and len(names50) == 16
    names20 = list(se_blocks(create_model("se_resnet20")))
    assert names20 == [f"SE_{s}_{b}" for s in (2, 3, 4) for b in (1, 2, 3)]


def test_paper_blocks_picks_the_fig6_panels():
    names50 = list(se_blocks(create_model("se_resnet50")))
    assert ex.paper_blocks(names50) == ["SE_2_3", "SE_3_4", "SE_4_6", "SE_5_1", "SE_5_2", "SE_5_3"]
    names20 = list(se_blocks(create_model("se_resnet20")))
    assert ex.paper_blocks(names20) == ["SE_2_3", "SE_3_3", "SE_4_1", "SE_4_2", "SE_4_3"]
    # order of the input does not matter; SE_10_x sorts after SE_9_x (numbers, not strings)
    assert ex.paper_blocks(["SE_10_1", "SE_9_2", "SE_9_1"]) == ["SE_9_2", "SE_10_1"]
    with pytest.raises(ValueError, match="SE_<stage>_<block>"):
        ex.paper_blocks(["layer1.0.se"])


# --------------------------------------------------------------------------- analysis numbers
def test_class_specificity_zero_when_classes_alike_and_positive_when_they_differ():
    rng = np.random.default_rng(0)
    shared = rng.uniform(0.2, 0.8, size=16)
    same = make_stats(np.tile(shared, (4, 1)), np.full((4, 16), 0.1))
    assert ex.class_specificity(same, "SE_4_1") == pytest.approx(0.0, abs=1e-12)
    assert ex.class_specificity(same, "SE_4_1", debias=False) == pytest.approx(0.0, abs=1e-12)

    means = np.tile(shared, (4, 1))
    means[1] += 0.2  # class 1 differs by two within-class stds in every channel
    differ = make_stats(means, np.full((4, 16), 0.1))
    # Raw: pairs (0,1), (1,2), (1,3) are 0.2 apart, the other three 0 → RMS 0.2·√½, over std 0.1.
    assert ex.class_specificity(differ, "SE_4_1", debias=False) == pytest.approx(2 * np.sqrt(0.5))
    # Debiased: minus the noise 2·0.1²/20 per squared distance.
    expected = np.sqrt(0.5 * 0.04 - 2 * 0.01 / 20) / 0.1
    assert ex.class_specificity(differ, "SE_4_1") == pytest.approx(expected)


def test_class_specificity_debias_removes_the_sampling_noise_floor():
    rng = np.random.default_rng(1)
    n, k, c = 20, 10, 64
    samples = rng.normal(0.5, 0.1, size=(k, n, c))  # no class effect at all
    stats = make_stats(samples.mean(1), samples.std(1, ddof=1), count=n)
    raw = ex.class_specificity(stats, "SE_4_1", debias=False)
    assert raw == pytest.approx(np.sqrt(2 / n), rel=0.1)
    assert ex.class_specificity(stats, "SE_4_1") < 0.15 * raw


def test_saturation_similarity_and_top_channels():
    means = np.array([[0.9, 0.1, 0.5], [0.45, 0.05, 0.25]])
    stats = make_stats(means, np.full((2, 3), 0.1), count=4)
    stats.high["SE_4_1"] = np.array([[4, 0, 1], [0, 0, 0]])
    stats.low["SE_4_1"] = np.array([[0, 3, 0], [0, 4, 0]])
    sat = ex.saturation(stats, "SE_4_1", per_class=True)
    assert sat["high"] == pytest.approx(5 / 24) and sat["low"] == pytest.approx(7 / 24)
    np.testing.assert_allclose(sat["high_per_class"], [5 / 12, 0.0])

    # class 1 = class 0 / 2: the same up to a scale (the paper's SE_5_3 observation)
    np.testing.assert_allclose(ex.similarity(stats, "SE_4_1", "cosine"), np.ones((2, 2)))
    np.testing.assert_allclose(ex.similarity(stats, "SE_4_1", "correlation"), np.ones((2, 2)))
    with pytest.raises(ValueError, match="cosine"):
        ex.similarity(stats, "SE_4_1", "euclid")

    np.testing.assert_array_equal(ex.top_channels(stats, "SE_4_1", "c0", 2), [0, 2])
    # relative to the all-class mean [0.675, 0.075, 0.375]: class 1 is lowest in channel 0
    np.testing.assert_array_equal(ex.top_channels(stats, "SE_4_1", 1, 1, relative=True), [1])
    with pytest.raises(ValueError, match="k must"):
        ex.top_channels(stats, "SE_4_1", 0, 4)
    with pytest.raises(ValueError, match="Unknown class"):
        ex.top_channels(stats, "SE_4_1", "dog", 1)

    table = ex.summary_table(stats)
    assert list(table.index) == ["SE_4_1"]
    assert table.loc["SE_4_1", "share_s>0.95"] == pytest.approx(5 / 24)


def test_channel_order_is_a_permutation_grouping_preferred_channels():
    means = np.array([[0.9, 0.1, 0.8, 0.1], [0.1, 0.9, 0.1, 0.7]])
    order = ex.channel_order(means)
    assert sorted(order.tolist()) == [0, 1, 2, 3]
    position = {c: i for i, c in enumerate(order.tolist())}
    assert abs(position[0] - position[2]) == 1 and abs(position[1] - position[3]) == 1


def test_sample_channels_is_uniform_sorted_and_seeded():
    a, b = ex.sample_channels(2048, 50, seed=3), ex.sample_channels(2048, 50, seed=3)
    np.testing.assert_array_equal(a, b)
    assert len(set(a.tolist())) == 50 and np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(ex.sample_channels(16, 50), np.arange(16))


# --------------------------------------------------------------------------- switching channels off
def test_switching_channels_off_changes_the_output(model, batch):
    images, _ = batch
    block = se_blocks(model)["SE_4_3"]
    with torch.no_grad():
        plain = model(images)
        with override_gate(block, 0.0, channels=[0, 5, 9]):
            off = model(images)
    assert not torch.allclose(plain, off)


def test_all_gates_at_one_gives_the_plain_network(model, batch):
    images, _ = batch
    plain_net = create_model("resnet20", num_classes=NUM_CLASSES).eval()
    missing, unexpected = plain_net.load_state_dict(model.state_dict(), strict=False)
    assert not missing and all(".se." in key for key in unexpected)
    blocks = list(se_blocks(model).values())
    with torch.no_grad():
        expected = plain_net(images)
        with override_gate(blocks, 1.0):
            all_at_once = model(images)
        # listing every channel explicitly must give the same as channels=None
        hooks = [override_gate(b, 1.0, channels=range(b.channels)) for b in blocks]
        for hook in hooks:
            hook.__enter__()
        try:
            channel_by_channel = model(images)
        finally:
            for hook in hooks:
                hook.__exit__(None, None, None)
    torch.testing.assert_close(all_at_once, expected)
    torch.testing.assert_close(channel_by_channel, expected)


def test_accuracy_with_channels_off_measures_the_knocked_out_network(model, batch):
    images, labels = batch
    block = se_blocks(model)["SE_4_3"]
    off = list(range(0, 64, 2))
    with torch.no_grad():
        pred_plain = model(images).argmax(1)
        with override_gate(block, 0.0, channels=off):
            pred_off = model(images).argmax(1)
    # Label every image with the knocked-out network's prediction: it then scores 100 %.
    data = (images, pred_off)
    assert ex.accuracy_with_channels_off(model, data, "SE_4_3", off, batch_size=7) == 1.0
    expected_plain = float((pred_plain == pred_off).float().mean())
    assert ex.accuracy_with_channels_off(model, data, "SE_4_3", None) == pytest.approx(expected_plain)
    assert ex.accuracy_with_channels_off(model, data, "SE_4_3", []) == pytest.approx(expected_plain)
    # One class only
    cls = int(pred_off[0])
    mask = pred_off == cls
    got = ex.accuracy_with_channels_off(model, data, "SE_4_3", None, class_index=cls)
    assert got == pytest.approx(float((pred_plain[mask] == cls).float().mean()))
    with pytest.raises(ValueError, match="0 … 63"):
        ex.accuracy_with_channels_off(model, data, "SE_4_3", [64])
    with pytest.raises(ValueError, match="normalised floats"):
        ex.accuracy_with_channels_off(model, (images.to(torch.uint8), labels), "SE_4_3", None)


def test_knockout_comparison_uses_the_class_top_channels(model, batch):
    images, labels = batch
    with ex.ExcitationRecorder(model) as rec:
        rec.update(images, labels)
    stats = rec.stats()
    result = ex.knockout_comparison(model, (images, labels), stats, "SE_4_2", 0, k=4, draws=3, seed=0)
    assert result.top_channels == ex.top_channels(stats, "SE_4_2", 0, 4).tolist()
    assert len(result.random_off) == 3
    expected = ex.accuracy_with_channels_off(
        model, (images, labels), "SE_4_2", result.top_channels, class_index=0
    )
    assert result.top_off == pytest.approx(expected)


# --------------------------------------------------------------------------- persistence and convenience
def test_class_excitations_samples_per_class_and_round_trips(model, tmp_path):
    generator = torch.Generator().manual_seed(2)
    images = torch.randn(60, 3, 32, 32, generator=generator)
    labels = torch.arange(60) % NUM_CLASSES
    stats = ex.class_excitations(model, (images, labels), images_per_class=6, batch_size=16, seed=0)
    np.testing.assert_array_equal(stats.count, np.full(NUM_CLASSES, 6))
    assert stats.metadata["images_per_class"] == 6 and stats.metadata["model"] == "se_resnet20"
    assert stats.provenance(figure_kind="fig6")["images_per_class"] == 6

    for suffix in (".npz", ".pt"):
        path = stats.save(tmp_path / f"stats{suffix}")
        loaded = ex.ExcitationStats.load(path)
        assert loaded.blocks == stats.blocks and loaded.classes == stats.classes
        assert loaded.metadata["images_per_class"] == 6
        for block in stats.blocks:
            np.testing.assert_array_equal(loaded.mean[block], stats.mean[block])
            np.testing.assert_array_equal(loaded.std[block], stats.std[block])
            np.testing.assert_array_equal(loaded.high[block], stats.high[block])

    with pytest.raises(ValueError, match="fewer than 20"):
        ex.class_excitations(model, (images, labels), images_per_class=20)
    with pytest.raises(ValueError, match=r"\.npz or \.pt"):
        stats.save(tmp_path / "stats.csv")
    (tmp_path / "broken.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="recompute"):
        ex.ExcitationStats.load(tmp_path / "broken.npz")


def test_image_excitations_match_the_plain_hook(model, batch):
    images, _ = batch
    got = ex.image_excitations(model, images[:2], blocks=["SE_3_1"])
    assert list(got) == ["SE_3_1"]
    np.testing.assert_allclose(got["SE_3_1"], plain_excitations(model, images[:2])["SE_3_1"].numpy())
    assert all(len(b.gate._forward_hooks) == 0 for b in se_blocks(model).values())


# --------------------------------------------------------------------------- plots
def test_plots_draw_the_requested_panels_and_lines(model, batch):
    images, labels = batch
    with ex.ExcitationRecorder(model) as rec:
        rec.update(images, labels)
    stats = rec.stats(classes=["a", "b", "c", "d", "e"], metadata={"dataset": "noise", "images_per_class": 7})

    fig = px.plot_class_excitations(stats, classes=["a", "c"], n_channels=10, seed=1)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ex.paper_blocks(stats.blocks)
    last = panels[-1]
    assert len(last.lines) == 3  # two classes + the all-class mean
    channels = ex.sample_channels(64, 10, seed=1)
    line = {ln.get_label(): ln for ln in last.lines}
    np.testing.assert_allclose(line["c"].get_ydata(), stats.mean[last.get_title()][2, channels])
    np.testing.assert_allclose(line["all"].get_ydata(), stats.all_class_mean(last.get_title())[channels])
    assert line["all"].get_zorder() < min(line[c].get_zorder() for c in "ac"), "'all' is drawn underneath"
    plt.close(fig)

    figures = [
        px.plot_class_band(stats, "b", n_channels=10),
        px.plot_excitation_heatmaps(stats, relative=True),
        px.plot_similarity(stats, blocks=["SE_2_3", "SE_4_3"]),
        px.plot_specificity(stats),
        px.plot_saturation(stats),
        px.plot_image_vs_class(stats, ex.image_excitations(model, images[:1]), "a"),
    ]
    assert all(isinstance(f, plt.Figure) for f in figures)
    for f in figures:
        plt.close(f)
    with pytest.raises(ValueError, match="no excitation for"):
        px.plot_image_vs_class(stats, {}, "a")
