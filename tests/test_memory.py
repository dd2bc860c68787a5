"""nst_keras.memory: the peak-memory prediction and the check that turns an OOM into a UserError."""
import pytest

from nst_keras.gatys import memory
from nst_keras.errors import UserError

DEFAULT_LAYERS = ("block4_conv2", "block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")


def test_prediction_grows_linearly_with_pixels():
    small = memory.predict_peak_bytes((100, 100), "vgg16", DEFAULT_LAYERS)
    double = memory.predict_peak_bytes((100, 200), "vgg16", DEFAULT_LAYERS)
    quad = memory.predict_peak_bytes((100, 300), "vgg16", DEFAULT_LAYERS)
    assert small < double < quad
    assert quad - double == pytest.approx(double - small, rel=1e-6)


def test_shallower_network_needs_less():
    deep = memory.predict_peak_bytes((512, 512), "vgg16", DEFAULT_LAYERS)
    shallow = memory.predict_peak_bytes((512, 512), "vgg16", ("block1_conv1", "block2_conv1"))
    assert shallow < deep
    assert memory.predict_peak_bytes((512, 512), "vgg19", DEFAULT_LAYERS) > deep


def test_largest_fitting_size_is_the_boundary():
    shape = (341, 512)
    budget = memory.predict_peak_bytes(memory.shape_for_long_side(shape, 1500), "vgg16", DEFAULT_LAYERS)
    fits = memory.largest_fitting_size(shape, "vgg16", DEFAULT_LAYERS, budget)
    assert fits >= 1500
    assert memory.predict_peak_bytes(memory.shape_for_long_side(shape, fits + 1), "vgg16", DEFAULT_LAYERS) > budget


def test_check_names_the_size_that_fits(monkeypatch):
    monkeypatch.setattr(memory, "resident_bytes", lambda: 0)
    shape = memory.shape_for_long_side((341, 512), 4096)
    available = memory.predict_peak_bytes(memory.shape_for_long_side((341, 512), 1024), "vgg16", DEFAULT_LAYERS)
    with pytest.raises(UserError) as err:
        memory.check_fits(shape, 4096, "vgg16", DEFAULT_LAYERS, available=available)
    message = str(err.value)
    assert "size 4096" in message and "GiB" in message
    fits = memory.largest_fitting_size((341, 512), "vgg16", DEFAULT_LAYERS, available)
    assert f"--size {fits} or less" in message and 1024 <= fits < 1100
    memory.check_fits(memory.shape_for_long_side((341, 512), 1024), 1024, "vgg16", DEFAULT_LAYERS, available=available)


def test_check_is_skipped_when_memory_is_unknown(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: None)
    memory.check_fits((100000, 100000), 100000, "vgg16", DEFAULT_LAYERS)


def test_available_bytes_reads_meminfo():
    value = memory.available_bytes()
    assert value is None or value > 0


def test_stylize_refuses_a_size_that_does_not_fit(monkeypatch, tiny_extractor):
    from conftest import make_image
    from nst_keras.gatys.config import GatysConfig
    from nst_keras.gatys import stylize

    monkeypatch.setattr(memory, "available_bytes", lambda: 1)
    monkeypatch.setattr(memory, "resident_bytes", lambda: 0)
    config = GatysConfig(model="vgg16", weights="random", size=48, content_layers=("block3_conv1",),
                         style_layers=("block1_conv1", "block2_conv1"), iterations=1, coarse_size=0)
    with pytest.raises(UserError, match="size 48"):
        stylize(make_image(40, 48), make_image(36, 36, 1), config, extractor=tiny_extractor)


def test_cli_reports_the_memory_error_in_one_line(monkeypatch, tmp_path, images, capsys):
    from nst_keras.cli.gatys import main

    monkeypatch.setattr(memory, "available_bytes", lambda: 1)
    monkeypatch.setattr(memory, "resident_bytes", lambda: 0)
    code = main([images["content"], images["style"], "-o", str(tmp_path / "out.png"), "--size", "48",
                 "--weights", "random", "--model", "vgg16", "--iterations", "1", "--coarse-size", "0", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "size 48" in err and "accepted" in err
