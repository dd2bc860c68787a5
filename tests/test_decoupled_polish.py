"""Decoupled mode's final polish: the image as saved (clipped, 8 bits) keeps the result's features."""
import numpy as np
import pytest

from nst_keras import decoupled as dc
from nst_keras.decoupled.polish import as_saved, polish
from nst_keras.image import to_uint8
from conftest import gradient_image

SIZE = 32
CONFIG = dc.DecoupledConfig(size=SIZE, weights="random", layers=dc.LAYERS[:2], segments=(2, 2), noise_draws=4)


def _image(seed):
    return gradient_image(seed, SIZE)


@pytest.fixture(scope="module")
def setup():
    net = dc.build_net(CONFIG, (SIZE, SIZE))[0]
    return net, dc.reference_features(net, CONFIG.noise_draws, seed=0)


def _kept(net, image, result):
    a, b = net.split(net.means(image)), net.split(net.means(result))
    return {n: dc.snr_db(a[n], b[n]) for n in net.layers}


def test_polish_keeps_the_features_that_clipping_loses(setup):
    net, reference = setup
    result = 1.4 * _image(3).astype(np.float64) - 0.2  # ~9 % of the values outside [0, 1]
    assert np.mean((result < 0) | (result > 1)) > 0.05
    clipped = _kept(net, as_saved(result, net.shape), result)
    saved, report = polish(net, result, reference, CONFIG)
    assert saved.min() >= 0 and saved.max() <= 1
    assert np.array_equal(to_uint8(saved).astype(np.float32) / 255, saved)  # on the 8-bit grid: saved as is
    kept = _kept(net, saved, result)
    assert min(kept.values()) > 40 and min(kept.values()) > min(clipped.values()) + 15, (clipped, kept)
    assert report["saved_snr_db"] == pytest.approx(kept, abs=0.05)


def test_transfer_measures_after_clipping_on_the_image_as_saved(setup):
    net, _ = setup
    result = dc.decoupled_transfer(_image(4), _image(5), CONFIG)
    image = result.image.astype(np.float64)
    assert np.array_equal(to_uint8(result.image).astype(np.float32) / 255, result.image)
    saved = net.split(net.means(image))
    for name in net.layers:
        expect = dc.snr_db(saved[name], result.style_features[name])
        assert result.metadata["after_clipping_snr_db"][name] == pytest.approx(expect, abs=1e-6)
    assert min(result.metadata["saved_vs_result_snr_db"].values()) > 40
    assert result.metadata["polish"]["jacobians"] >= 1
    unpolished = dc.decoupled_transfer(_image(4), _image(5), CONFIG.replace(polish=False))
    assert unpolished.metadata["polish"] is None
    assert min(unpolished.metadata["saved_vs_result_snr_db"].values()) < min(
        result.metadata["saved_vs_result_snr_db"].values())


def test_rounding_to_8_bits_chooses_the_levels_that_keep_the_features(setup):
    """An image in [0, 1] off the 8-bit grid: the polish has nothing to correct, and rounding to
    the nearest level is what loses features; choosing each value's level by the Jacobian keeps
    more of every layer, and every value stays on one of its two neighbouring levels."""
    net, reference = setup
    image = np.clip(_image(5).astype(np.float64) + np.random.default_rng(0).normal(0, 0.003, (SIZE, SIZE, 3)), 0, 1)
    nearest = _kept(net, as_saved(image, net.shape), image)
    saved, report = polish(net, image, reference, CONFIG)
    kept = _kept(net, saved, image)
    assert report["rounding_moved_values"] > 0
    assert all(kept[n] > nearest[n] + 6 for n in net.layers), (nearest, kept)
    assert report["nearest_rounding_snr_db"] == pytest.approx(nearest, abs=0.05)
    levels = saved.reshape(-1).astype(np.float64) * 255
    flat = image.reshape(-1) * 255
    assert np.all((levels >= np.floor(flat) - 1e-3) & (levels <= np.ceil(flat) + 1e-3))
    assert np.array_equal(to_uint8(saved).astype(np.float32) / 255, saved)
