import numpy as np
import pytest

from nst_keras import color
from nst_keras.cli import gatys as cli
from nst_keras.gatys.config import GatysConfig
from nst_keras.gatys import stylize
from nst_keras.image import load_image
from conftest import make_image, write_image
from test_cli import FAST, assert_one_line_error, run


def _two_images():
    """A content-like image and a differently coloured 'style' image, both inside the RGB cube."""
    a = (0.2 + 0.6 * make_image(40, 48, 0)).astype(np.float32)
    b = make_image(36, 36, 1)
    b = np.clip(0.2 + 0.5 * b[..., [2, 0, 1]] * np.array([1.0, 0.6, 0.3]), 0, 1).astype(np.float32)
    return a, b


def test_yiq_round_trip_and_gray_luminance():
    img = make_image(8, 9, 3)
    np.testing.assert_allclose(color.yiq_to_rgb(color.rgb_to_yiq(img)), img, atol=1e-5)
    lum = color.luminance(img)
    np.testing.assert_allclose(color.luminance(color.gray(lum)), lum, atol=1e-5)


@pytest.mark.parametrize("method", ["meanvar", "cov", "cholesky", "histogram"])
def test_means_and_stds_matched(method):
    content, style = _two_images()
    out = color.match_colors(style, content, method)
    assert out.shape == style.shape and out.dtype == np.float32
    x, r = out.reshape(-1, 3), content.reshape(-1, 3)
    np.testing.assert_allclose(x.mean(0), r.mean(0), atol=0.01)
    np.testing.assert_allclose(x.std(0), r.std(0), atol=0.01)


@pytest.mark.parametrize("method", ["cov", "cholesky"])
def test_covariance_matched(method):
    content, style = _two_images()
    out = color.match_colors(style, content, method)
    cov_out = np.cov(out.reshape(-1, 3), rowvar=False)
    cov_ref = np.cov(content.reshape(-1, 3), rowvar=False)
    np.testing.assert_allclose(cov_out, cov_ref, atol=2e-3)


def test_cov_and_cholesky_differ_but_meanvar_misses_cross_terms():
    content, style = _two_images()
    cov = color.match_colors(style, content, "cov")
    chol = color.match_colors(style, content, "cholesky")
    assert np.abs(cov - chol).max() > 1e-3  # two different square roots
    meanvar = color.match_colors(style, content, "meanvar")
    ref = np.cov(content.reshape(-1, 3), rowvar=False)
    err_mv = np.abs(np.cov(meanvar.reshape(-1, 3), rowvar=False) - ref).max()
    err_cov = np.abs(np.cov(cov.reshape(-1, 3), rowvar=False) - ref).max()
    assert err_cov < err_mv


def test_histogram_quantiles_matched():
    content, style = _two_images()
    out = color.match_colors(style, content, "histogram")
    q = np.linspace(0.02, 0.98, 25)
    for c in range(3):
        np.testing.assert_allclose(np.quantile(out[..., c], q), np.quantile(content[..., c], q), atol=0.01)
        # the map is monotone: pixel order within a channel is kept
        order = np.argsort(style[..., c].ravel(), kind="stable")
        assert np.all(np.diff(out[..., c].ravel()[order]) >= -1e-7)


def test_none_is_identity_and_bad_method_is_user_error():
    content, style = _two_images()
    np.testing.assert_array_equal(color.match_colors(style, content, "none"), style)
    from nst_keras.errors import UserError

    with pytest.raises(UserError, match="accepted: none, meanvar"):
        color.match_colors(style, content, "lab")


def test_match_luminance_mean_std():
    content, style = _two_images()
    out = color.match_luminance(color.luminance(style), color.luminance(content))
    assert abs(out.mean() - color.luminance(content).mean()) < 1e-4
    assert abs(out.std() - color.luminance(content).std()) < 1e-4


def test_combine_luminance_keeps_luma_and_chroma():
    content, style = _two_images()
    style = np.resize(style, content.shape)  # any image of the content's shape
    out = color.combine_luminance(0.25 + 0.5 * style, content)
    yiq_out, yiq_c = color.rgb_to_yiq(out), color.rgb_to_yiq(content)
    np.testing.assert_allclose(yiq_out[..., 0], color.luminance(0.25 + 0.5 * style), atol=0.02)
    np.testing.assert_allclose(yiq_out[..., 1:], yiq_c[..., 1:], atol=0.02)


@pytest.mark.parametrize("mode", ["luminance", "swap"])
def test_stylize_keeps_content_chrominance(tiny_extractor, mode):
    content, style = _two_images()
    config = GatysConfig(size=32, iterations=3, coarse_size=0, content_layers=("block2_conv1",),
                         style_layers=("block1_conv1", "block3_conv1"), weights="random", model="vgg16",
                         style_weight=1.0, original_colors=mode)
    result = stylize(content, style, config, extractor=tiny_extractor)
    from nst_keras.image import resize_to

    c = resize_to(content, result.image.shape[:2])
    chroma_out = color.rgb_to_yiq(result.image)[..., 1:]
    chroma_c = color.rgb_to_yiq(c)[..., 1:]
    # Chrominance is the content's except where clipping to the RGB cube moved it.
    assert np.median(np.abs(chroma_out - chroma_c)) < 0.01
    assert result.metadata["config"]["original_colors"] == mode


def test_prepare_luminance_mode_gives_grey_images_with_matched_luminance():
    content, style = _two_images()
    config = GatysConfig(original_colors="luminance", color_match="histogram")
    c, styles, finish = color.prepare(content, [style, style[::-1]], config)
    for img in [c, *styles]:
        assert np.abs(img[..., 0] - img[..., 1]).max() < 1e-6 and np.abs(img[..., 1] - img[..., 2]).max() < 1e-6
    lum_c = color.luminance(content)
    np.testing.assert_allclose(c[..., 0], lum_c, atol=1e-5)
    assert abs(styles[0][..., 0].mean() - lum_c.mean()) < 0.01
    assert abs(styles[0][..., 0].std() - lum_c.std()) < 0.01
    out = finish(c)  # content luminance + content chrominance = the content
    np.testing.assert_allclose(out, content, atol=0.01)


def test_cli_color_options(tmp_path, images, capsys):
    source = write_image(tmp_path / "palette.png", 30, 30, 5)
    out = tmp_path / "out.png"
    code, err = run(capsys, images["content"], images["style"], "-o", out, *FAST, "--color-match", "cov",
                    "--color-source", source, "--original-colors")
    assert code == 0, err
    assert load_image(out).shape == (27, 32, 3)
    args = cli.build_parser().parse_args(["c.png", "s.png", "--original-colors"])
    assert args.original_colors == cli.ORIGINAL_COLORS_FLAG
    args = cli.build_parser().parse_args(["c.png", "s.png", "--original-colors", "swap"])
    assert args.original_colors == "swap"


@pytest.mark.parametrize("argv,needles", [
    (["--color-match", "hist"], ["unknown color_match 'hist'", "histogram"]),
    (["--original-colors", "yuv"], ["unknown original_colors 'yuv'", "luminance, swap"]),
    (["--color-source", "{style}"], ["needs a colour match", "--color-match"]),
    (["--color-match", "cov", "--color-source", "{tmp}/missing.png"], ["color source image", "does not exist"]),
])
def test_color_bad_inputs(tmp_path, images, capsys, argv, needles):
    argv = [a.format(style=images["style"], tmp=tmp_path) for a in argv]
    code, err = run(capsys, images["content"], images["style"], "-o", tmp_path / "o.png", *FAST, *argv)
    assert_one_line_error(code, err, *needles)
