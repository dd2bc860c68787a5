"""What a new user hit (issue 22): interrupted runs, checkpoints in luminance mode, start-up Ctrl-C."""
import json

import numpy as np
import pytest

from nst_keras.cli import gatys as cli
from nst_keras.image import load_image, read_png_metadata
from conftest import interrupting_bar, write_image
from test_cli import FAST, run


def _interrupt_at(monkeypatch, iteration):
    monkeypatch.setattr(cli, "progress_bar", interrupting_bar(iteration))


def test_ctrl_c_in_a_coarse_pass_saves_the_requested_size_with_a_sidecar(tmp_path, images, capsys, monkeypatch):
    _interrupt_at(monkeypatch, 3)
    out = tmp_path / "o.png"
    argv = [*FAST, "--size", "64", "--coarse-size", "32", "--coarse-iterations", "4"]
    code, err = run(capsys, images["content"], images["style"], "-o", out, *argv)
    assert code == 130 and "coarse pass" in err and "upscaled to 64x53" in err, err
    assert load_image(out).shape == (53, 64, 3)
    sidecar = json.loads((tmp_path / "o.json").read_text())
    assert sidecar["stop_reason"] == "interrupted" and sidecar["interrupted_at_iteration"] == 2
    assert [h["iteration"] for h in sidecar["history"]] == [1, 2] and sidecar["upscaled_from"] == "32x27"
    assert read_png_metadata(out)["stop_reason"] == "interrupted"


def test_ctrl_c_while_starting_is_one_line_and_130(tmp_path, images, capsys, monkeypatch):
    def interrupted(verbose=False):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "quiet_start", interrupted)
    code, err = run(capsys, images["content"], images["style"], "-o", tmp_path / "o.png", *FAST)
    assert code == 130 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def _colourful(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:48] / 48
    img = np.stack([xx, yy, 1 - xx], -1) * 0.8 + 0.1 + rng.normal(0, 0.02, (40, 48, 3))
    from PIL import Image

    path = tmp_path / "colour.png"
    Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)
    return str(path)


@pytest.mark.parametrize("interrupt", [False, True])
def test_luminance_mode_saves_coloured_checkpoints_and_interrupted_images(tmp_path, images, capsys, monkeypatch,
                                                                          interrupt):
    content = _colourful(tmp_path)
    if interrupt:
        _interrupt_at(monkeypatch, 2)
    out = tmp_path / "o.png"
    code, err = run(capsys, content, images["style"], "-o", out, *FAST, "--original-colors", "--checkpoint-every", "1")
    assert code == (130 if interrupt else 0), err
    saved = [load_image(tmp_path / "o_0001.png"), load_image(out)]
    for image in saved:  # the content's colours, not the grey working image
        assert np.abs(image[..., 0] - image[..., 2]).mean() > 0.1


def test_inputs_are_recorded_by_name_and_hash_unless_paths_are_asked_for(tmp_path, images, capsys):
    import hashlib

    out = tmp_path / "o.png"
    code, err = run(capsys, images["content"], images["style"], "-o", out, *FAST)
    assert code == 0, err
    text = out.read_bytes().decode("latin-1") + (tmp_path / "o.json").read_text()
    assert str(tmp_path) not in text  # no directory of the user's in a shared result
    style = read_png_metadata(out)["inputs"]["style"][0]
    assert style == {"name": "style.png",
                     "sha256": hashlib.sha256(open(images["style"], "rb").read()).hexdigest()}
    code, err = run(capsys, images["content"], images["style"], "-o", out, *FAST, "--record-paths")
    assert read_png_metadata(out)["inputs"]["content"]["path"] == images["content"]


def _one_line_error(code, err, *needles):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_all_weights_zero_is_refused(tmp_path, images, capsys):
    code, err = run(capsys, images["content"], images["style"], "-o", tmp_path / "o.png", *FAST,
                    "--content-weight", "0", "--style-weight", "0", "--tv-weight", "0")
    _one_line_error(code, err, "all 0", "nothing to optimise")


def test_an_overflowing_weight_is_named_before_the_first_step(tmp_path, images, capsys):
    code, err = run(capsys, images["content"], images["style"], "-o", tmp_path / "o.png", *FAST,
                    "--style-weight", "1e38")
    _one_line_error(code, err, "style_weight 1e+38", "overflow", "smaller --style-weight")
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("which", ["content", "style"])
def test_inputs_too_small_for_the_deepest_layer_are_refused(tmp_path, images, capsys, which):
    tiny = write_image(tmp_path / "tiny.png", 1, 1, 3)
    argv = [tiny, images["style"]] if which == "content" else [images["content"], tiny]
    code, err = run(capsys, *argv, "-o", tmp_path / "o.png", *FAST)
    _one_line_error(code, err, f"{which} image is 1x1 px", "at least 4 px")


def test_animated_gif_says_the_first_frame_is_used(tmp_path, images, capsys):
    from PIL import Image

    frames = [Image.fromarray(np.full((40, 48, 3), v, np.uint8)) for v in (40, 200)]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    code = cli.main([str(gif), images["style"], "-o", str(tmp_path / "o.png"), *[a for a in FAST if a != "-q"]])
    err = capsys.readouterr().err
    assert code == 0 and "has 2 frames; using the first" in err, err


def test_dry_run_that_would_not_fit_is_refused(tmp_path, images, capsys, monkeypatch):
    from nst_keras.gatys import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 2 ** 20)  # 1 MiB free
    monkeypatch.setattr(memory, "resident_bytes", lambda: 0)  # as in a fresh process
    code, err = run(capsys, images["content"], images["style"], "-o", tmp_path / "o.png", *FAST, "--dry-run")
    _one_line_error(code, err, "needs about", "accepted:")


def test_huge_inputs_are_decoded_reduced(tmp_path):
    from PIL import Image

    from nst_keras.image import load_image as load

    big = tmp_path / "big.jpg"
    Image.fromarray(np.full((2400, 3200, 3), 128, np.uint8)).save(big, quality=90)
    assert load(big).shape == (2400, 3200, 3)
    small = load(big, long_side=64)
    assert small.shape[0] >= 128 and small.shape[0] * 4 <= 2400  # reduced, still twice what is needed
    png = tmp_path / "big.png"
    Image.fromarray(np.full((600, 800, 3), 90, np.uint8)).save(png)
    assert load(png, long_side=50).shape == (100, 134, 3)  # reduced by 6: short side 100 = 2 x 50


def test_api_checks_its_images_keras_style(tiny_extractor):
    from PIL import Image

    from nst_keras.errors import UserError
    from nst_keras.gatys import GatysConfig, stylize
    from conftest import make_image

    config = GatysConfig(model="vgg16", weights="random", size=24, iterations=1, coarse_size=0,
                         content_layers=("block2_conv1",), style_layers=("block1_conv1",))
    img = make_image(24, 32)
    with pytest.raises(UserError, match=r"integer values.*Received: dtype=uint8"):
        stylize((img * 255).astype(np.uint8), img, config, extractor=tiny_extractor)
    with pytest.raises(UserError, match=r"outside \[0, 1\] \(divide 0-255 images by 255\).*Received: min="):
        stylize(img * 255, img, config, extractor=tiny_extractor)
    with pytest.raises(UserError, match=r"batch axis.*Received: shape=\(1, 24, 32, 3\)"):
        stylize(img[None], img, config, extractor=tiny_extractor)
    pil = Image.fromarray((img * 255).astype(np.uint8))
    assert stylize(pil, pil, config, extractor=tiny_extractor).image.shape == (18, 24, 3)  # PIL is accepted
    with pytest.raises(UserError, match=r"no layer block5_conv1.*Received: extractor layers"):
        stylize(img, img, config.replace(style_layers=("block5_conv1",)), extractor=tiny_extractor)


def test_decoupled_size_refusal_names_a_size_that_works_for_the_aspect():
    from nst_keras.decoupled import DecoupledConfig, prepare
    from nst_keras.errors import UserError
    from conftest import make_image

    config = DecoupledConfig(size=32, weights="random")  # block5 needs 32 px on the short side
    with pytest.raises(UserError, match=r"content is 32x24 at size 32.*accepted: --size 42 or more"):
        prepare(make_image(300, 400), make_image(300, 400, 1), config)
    content, style = prepare(make_image(300, 400), make_image(300, 400, 1), config.replace(size=42))
    assert content.shape == (32, 42, 3) and style.shape == (32, 42, 3)
    with pytest.raises(UserError, match=r"Received: dtype=uint8"):
        prepare((make_image(300, 400) * 255).astype(np.uint8), make_image(300, 400), config)
