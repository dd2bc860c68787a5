import numpy as np
import pytest
import tensorflow as tf

from nst_keras import gatys
from nst_keras.gatys.config import GatysConfig
from nst_keras.losses import gram_matrix
from conftest import make_image, write_image
from test_cli import FAST, assert_one_line_error, run


def test_style_size_is_absolute_and_shrinks_with_coarse_scales():
    style = make_image(30, 60)
    config = GatysConfig(size=64, style_size=48)
    for content_shape in [(64, 48), (32, 64), (64, 64)]:  # any content of long side 64
        assert gatys.fit_style(style, content_shape, config).shape == (24, 48, 3)
    assert gatys.fit_style(style, (16, 32), config).shape == (12, 24, 3)  # the half-size scale


def test_style_scales_per_style():
    style = make_image(30, 60)
    config = GatysConfig(size=64, style_size=48, style_scales=(1.0, 0.5))
    assert gatys.fit_style(style, (32, 64), config, 0).shape == (24, 48, 3)
    assert gatys.fit_style(style, (32, 64), config, 1).shape == (12, 24, 3)
    config = GatysConfig(style_fit="scale", style_scale=0.5, style_scales=(2.0, 1.0))
    assert gatys.fit_style(style, (20, 40), config, 0).shape == (20, 40, 3)
    assert gatys.fit_style(style, (20, 40), config, 1).shape == (10, 20, 3)
    config = GatysConfig(style_fit="resize", style_scales=(0.5,))
    assert gatys.fit_style(style, (20, 40), config, 0).shape == (10, 20, 3)


def test_blend_weights_honoured(tiny_extractor):
    content, a, b = make_image(32, 32, 0), make_image(32, 32, 1), make_image(32, 32, 2)
    config = GatysConfig(content_layers=("block2_conv1",), style_layers=("block1_conv1", "block3_conv1"))
    ev = gatys.Evaluator(tiny_extractor, content, [a, b], config, blend_weights=[3.0, 1.0])
    fa, fb = tiny_extractor(tf.constant(a[None])), tiny_extractor(tf.constant(b[None]))
    for name, target in zip(config.style_layers, ev.style_targets):
        expected = 0.75 * gram_matrix(fa[name]) + 0.25 * gram_matrix(fb[name])
        np.testing.assert_allclose(target.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_cli_two_styles_with_scales_and_style_size(tmp_path, images, capsys):
    other = write_image(tmp_path / "other.png", 50, 30, 3)
    code, err = run(capsys, images["content"], images["style"], other, "-o", tmp_path / "o.png", *FAST,
                    "--style-size", "40", "--style-scales", "1,0.8", "--style-blend-weights", "0.7,0.3")
    assert code == 0, err


@pytest.mark.parametrize("argv,needles", [
    (["--style-scales", "1,2"], ["2 style scales for 1 style images", "one scale per style image"]),
    (["--style-scales", "0"], ["style_scales [0.0] contain 0", "positive"]),
    (["--style-scales", "-1"], ["style_scales -1.0"]),
    (["--style-size", "0"], ["style_size 0", "from 1 to max_size"]),
    (["--style-size", "9000"], ["style_size 9000"]),
    (["--style-size", "2"], ["too small for layer", "--style-size"]),
    (["--style-blend-weights", "-1"], ["style_blend_weights -1.0"]),
])
def test_style_size_bad_inputs(tmp_path, images, capsys, argv, needles):
    code, err = run(capsys, images["content"], images["style"], "-o", tmp_path / "o.png", *FAST, *argv)
    assert_one_line_error(code, err, *needles)
