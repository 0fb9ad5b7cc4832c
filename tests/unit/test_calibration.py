"""Calibration: on the calibration sample the realised strong fraction (via strong_mask) is within
one point of the target, ties included; the CLI prints α and the model string."""

from __future__ import annotations

import numpy as np
import pytest

from routers.base import strong_mask
from routers.calibration import calibrate, read_prompts, threshold_for_fraction
from cli.main import main
from routers.errors import ConfigError, DataError
from routers.models.length import LengthRouter


@pytest.mark.parametrize("target", [0.0, 0.1, 0.25, 0.5, 0.8, 1.0])
def test_realised_fraction_within_one_point(target):
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(2000), 3)  # many ties (1000 distinct values)
    alpha = threshold_for_fraction(scores, target)
    assert abs(strong_mask(scores, alpha).mean() - target) <= 0.01
    # the printed α parses back to the same decision
    assert np.array_equal(strong_mask(scores, float(str(alpha))), strong_mask(scores, alpha))


def test_big_tie_group_picks_nearest_realisable():
    scores = np.array([0.1] * 2 + [0.5] * 6 + [0.9] * 2)
    alpha = threshold_for_fraction(scores, 0.5)
    # realisable fractions: 0, .2, .8, 1 -> .2 and .8 equally far, the smaller is chosen
    assert strong_mask(scores, alpha).mean() == pytest.approx(0.2)
    with pytest.raises(ConfigError):
        threshold_for_fraction(scores, 1.5)
    with pytest.raises(ConfigError):
        threshold_for_fraction([1.2], 0.5)


def test_calibrate_router_on_sample_and_cli(tmp_path, capsys):
    rng = np.random.default_rng(2)
    prompts = ["word " * int(k) + "x" * int(j) for k, j in zip(rng.integers(1, 300, 500), rng.integers(0, 5, 500))]  # small tie groups, no saturation
    cal = calibrate(LengthRouter(), 0.5, prompts)
    assert abs(cal.realised - 0.5) <= 0.01 and cal.model == f"router-length-{cal.threshold}"
    scores = LengthRouter().score(prompts)
    assert abs(strong_mask(scores, cal.threshold).mean() - 0.5) <= 0.01
    f = tmp_path / "p.txt"
    f.write_text("\n".join(prompts) + "\n")
    assert main(["calibrate", "--router", "length", "--strong-fraction", "0.3", "--prompts", str(f), "--quiet"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("router-length-")
    alpha = float(out[-1].rsplit("-", 1)[1])
    assert abs(strong_mask(scores, alpha).mean() - 0.3) <= 0.01


def test_tied_router_scores_are_reported_not_hidden(caplog):
    prompts = ["same length"] * 10
    cal = calibrate(LengthRouter(), 0.5, prompts)
    assert cal.realised in (0.0, 1.0) and "tied scores" in caplog.text


def test_read_prompts_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_prompts(tmp_path / "nope.txt")
    j = tmp_path / "p.jsonl"
    j.write_text('{"instruction": "hi there"}\n{"prompt": "yo"}\n')
    assert read_prompts(j) == ["hi there", "yo"]
    c = tmp_path / "p.csv"
    c.write_text("text\nabc\n")
    with pytest.raises(DataError, match="no column 'prompt'"):
        read_prompts(c)
