import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from nst_keras import gatys
from nst_keras.gatys import regions
from nst_keras.gatys.config import GatysConfig
from nst_keras.losses import gram_matrix
from conftest import make_image, write_image
from test_cli import FAST, assert_one_line_error, run


def _features(h=6, w=7, c=5, seed=0):
    return tf.constant(np.random.default_rng(seed).normal(size=(1, h, w, c)).astype(np.float32))


def test_white_mask_gives_the_unmasked_gram():
    f = _features()
    white = np.ones((1, 6 * 7), np.float32)
    np.testing.assert_allclose(regions.masked_grams(f, white).numpy(), gram_matrix(f).numpy(), rtol=1e-6, atol=1e-6)
    # a uniform grey mask weights every position alike: the same Gram
    np.testing.assert_allclose(regions.masked_grams(f, 0.3 * white).numpy(), gram_matrix(f).numpy(), rtol=1e-5)


def test_binary_mask_gives_the_gram_of_the_region():
    f = _features()
    mask = np.zeros((6, 7), np.float32)
    mask[1:4, 2:6] = 1.0
    inside = f[:, 1:4, 2:6, :]
    got = regions.masked_grams(f, np.stack([mask.ravel(), 1.0 - mask.ravel()])).numpy()
    np.testing.assert_allclose(got[0], gram_matrix(inside).numpy()[0], rtol=1e-5, atol=1e-6)
    # the complement: the Gram of the other positions, normalised by their number
    flat = f.numpy().reshape(-1, 5)[mask.ravel() == 0]
    np.testing.assert_allclose(got[1], flat.T @ flat / len(flat), rtol=1e-5, atol=1e-6)


def test_layer_masks_average_over_each_position():
    mask = np.zeros((8, 8), np.float32)
    mask[:, :4] = 1.0
    mask[0, 4] = 1.0  # one stray pixel: a quarter of a 2x2 cell
    small = regions.layer_masks([mask], (4, 4))[0].reshape(4, 4)
    np.testing.assert_allclose(small[:, :2], 1.0)
    assert abs(small[0, 2] - 0.25) < 1e-6 and np.all(small[1:, 2:] == 0)


def test_evaluator_with_white_mask_equals_unmasked(tiny_extractor):
    content, style = make_image(32, 40, 0), make_image(32, 32, 1)
    config = GatysConfig(content_layers=("block2_conv1",), style_layers=("block1_conv1", "block3_conv1"))
    plain = gatys.Evaluator(tiny_extractor, content, [style], config)
    masked = gatys.Evaluator(tiny_extractor, content, [style], config, masks=[np.ones((16, 20), np.float32)])
    x = make_image(32, 40, 2)
    np.testing.assert_allclose(masked.terms_at(x), plain.terms_at(x), rtol=1e-5)


def test_evaluator_regions_use_each_style_in_its_region(tiny_extractor):
    """Left half styled by a, right by b: the image made of a | b has a lower loss than b | a."""
    a, b = make_image(32, 32, 1), make_image(32, 32, 7)
    content = make_image(32, 64, 0)
    left = np.zeros((32, 64), np.float32)
    left[:, :32] = 1.0
    config = GatysConfig(content_layers=("block2_conv1",), style_layers=("block1_conv1", "block2_conv1"),
                         content_weight=0.0, tv_weight=0.0)
    ev = gatys.Evaluator(tiny_extractor, content, [a, b], config, masks=[left, 1.0 - left])
    right_way = ev.terms_at(np.concatenate([a, b], axis=1))[1]
    wrong_way = ev.terms_at(np.concatenate([b, a], axis=1))[1]
    assert right_way < 0.5 * wrong_way


def _mask_file(path, h, w, box=None):
    arr = np.zeros((h, w), np.uint8)
    if box is None:
        arr[:] = 255
    else:
        arr[box] = 255
    Image.fromarray(arr, "L").save(path)
    return str(path)


def test_cli_regional_run(tmp_path, images, capsys):
    other = write_image(tmp_path / "other.png", 36, 36, 4)
    m1 = _mask_file(tmp_path / "m1.png", 20, 24, np.s_[:, :12])   # half the content's size, same aspect
    m2 = _mask_file(tmp_path / "m2.png", 20, 24, np.s_[:, 12:])
    code, err = run(capsys, images["content"], images["style"], other, "-o", tmp_path / "o.png", *FAST,
                    "--style-masks", m1, m2)
    assert code == 0, err


@pytest.mark.parametrize("case,needles", [
    ("count", ["1 style masks for 2 style images", "one mask per style image"]),
    ("aspect", ["is 40x10 px but the content is 48x40", "aspect ratio"]),
    ("black", ["black everywhere"]),
    ("negative", ["style_blend_weights -1.0"]),
    ("missing", ["style mask", "does not exist"]),
])
def test_regions_bad_inputs(tmp_path, images, capsys, case, needles):
    other = write_image(tmp_path / "other.png", 36, 36, 4)
    good = _mask_file(tmp_path / "good.png", 40, 48)
    masks = {"count": [good],
             "aspect": [good, _mask_file(tmp_path / "wide.png", 10, 40)],
             "black": [good, _mask_file(tmp_path / "black.png", 40, 48, np.s_[0:0])],
             "negative": [good, good],
             "missing": [good, str(tmp_path / "nothere.png")]}[case]
    extra = ["--style-blend-weights", "1,-1"] if case == "negative" else []
    code, err = run(capsys, images["content"], images["style"], other, "-o", tmp_path / "o.png", *FAST,
                    "--style-masks", *masks, *extra)
    assert_one_line_error(code, err, *needles)
