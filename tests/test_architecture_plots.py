"""Block diagrams of senet_lib.plots.architecture: the right boxes in the right panels."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from senet_lib.plots.architecture import PLACEMENT_TITLES, draw_se_module, draw_se_placements


def texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_placements_have_one_se_box_except_the_plain_unit():
    fig = draw_se_placements(captions={"standard": "22.28 %"})
    assert [ax.get_title() for ax in fig.axes] == list(PLACEMENT_TITLES.values())
    counts = [texts(ax).count("SE") for ax in fig.axes]
    assert counts == [0, 1, 1, 1, 1]
    assert "22.28 %" in texts(fig.axes[1]) and all("+" in texts(ax) for ax in fig.axes)
    plt.close(fig)


def test_se_post_box_sits_below_the_sum_and_pre_above_the_branch():
    fig = draw_se_placements(placements=("pre", "post"))
    y = {
        p: {t.get_text(): t.get_position()[1] for t in ax.texts}
        for p, ax in zip(("pre", "post"), fig.axes, strict=True)
    }
    assert y["pre"]["SE"] > y["pre"]["Residual"] > y["pre"]["+"]
    assert y["post"]["SE"] < y["post"]["+"] < y["post"]["Residual"]
    plt.close(fig)


def test_modules_and_bad_placement():
    fig = draw_se_module(host="Residual", residual=True)
    assert {"Global pooling", "Sigmoid", "+"} <= set(texts(fig.axes[1])) and "Sigmoid" not in texts(
        fig.axes[0]
    )
    plt.close(fig)
    with pytest.raises(ValueError, match="Unknown placement 'middle'"):
        draw_se_placements(placements=("middle",))
