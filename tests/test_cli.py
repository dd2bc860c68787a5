import dataclasses
import json
import os

import numpy as np
import pytest

from nst_keras.cli import common as cli_common
from nst_keras.cli import gatys as cli
from nst_keras.gatys.config import GatysConfig
from nst_keras.image import load_image, read_png_metadata
from conftest import interrupting_bar, write_image

FAST = ["--model", "vgg16", "--weights", "random", "--size", "32", "--iterations", "3", "--coarse-size", "0",
        "--content-layers", "block2_conv1", "--style-layers", "block1_conv1,block2_conv1", "-q"]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.err


def assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nst-gatys: error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


def test_every_config_field_has_a_flag():
    parser = cli.build_parser()
    flags = {opt for action in parser._actions for opt in action.option_strings}
    for field in dataclasses.fields(GatysConfig):
        assert "--" + field.name.replace("_", "-") in flags
    args = parser.parse_args(["c.png", "s.png"])
    assert cli.config_from_args(GatysConfig, args) == GatysConfig()


def test_full_run_writes_everything(tmp_path, images, capsys):
    out = tmp_path / "out.png"
    before = open(images["content"], "rb").read()
    code, err = run(capsys, images["content"], images["style"], "-o", out, *FAST, "--checkpoint-every", "2",
                    "--contact-sheet", tmp_path / "sheet.png", "--loss-log", tmp_path / "loss.csv",
                    "--loss-plot", tmp_path / "loss.png", "--seed", "7")
    assert code == 0, err
    img = load_image(out)
    assert img.shape == (27, 32, 3)  # 40x48 content at long side 32
    meta = read_png_metadata(out)
    assert meta["config"]["seed"] == 7 and meta["extractor"]["weights"] == "random"
    assert meta["nst_keras_version"] and meta["inputs"]["content"]["name"] == "content.png"
    assert len(meta["inputs"]["content"]["sha256"]) == 64 and "path" not in meta["inputs"]["content"]
    sidecar = json.loads((tmp_path / "out.json").read_text())
    assert len(sidecar["history"]) == 3 and sidecar["config"] == meta["config"]
    assert (tmp_path / "out_0002.png").exists() and (tmp_path / "sheet.png").exists()
    assert (tmp_path / "loss.csv").read_text().startswith("iteration,scale")
    assert (tmp_path / "loss.png").stat().st_size > 1000
    assert open(images["content"], "rb").read() == before
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


@pytest.mark.parametrize("argv,needles", [
    (["{missing}", "{style}"], ["does not exist"]),
    (["{notimage}", "{style}"], ["not a readable image"]),
    (["{content}", "{style}", "--content-layers", "block4_conv9"], ["unknown layer 'block4_conv9'", "did you mean"]),
    (["{content}", "{style}", "--style-weight", "-1"], ["style_weight -1.0", "accepted"]),
    (["{content}", "{style}", "--tv-weight", "inf"], ["tv_weight inf"]),
    (["{content}", "{style}", "--content-weight", "nan"], ["content_weight nan"]),
    (["{content}", "{style}", "-o", "{content}"], ["is also an input"]),
    (["{content}", "{style}", "-o", "{tmp}/nodir/out.png"], ["does not exist"]),
    (["{content}", "{style}", "-o", "{tmp}/out.jpg"], ["unsupported extension", ".png"]),
    (["{content}", "{style}", "--optimizer", "adamw"], ["unknown optimizer 'adamw'", "accepted: lbfgs"]),
    (["{content}", "{style}", "--size", "5000"], ["exceeds max_size 2560"]),
    (["{content}", "{style}", "--size", "3"], ["too small for layer"]),
    (["{content}", "{style}", "{style}", "--style-blend-weights", "1"], ["one weight per style image"]),
    (["{content}", "{style}", "--init", "{missing}"], ["init image", "does not exist"]),
    (["{content}", "{style}", "--loss-log", "{tmp}/loss.txt"], [".csv, .json"]),
])
def test_bad_inputs_give_one_line_and_exit_2(tmp_path, images, capsys, argv, needles):
    (tmp_path / "notimage.png").write_text("hello")
    values = dict(images, missing=tmp_path / "missing.png", notimage=tmp_path / "notimage.png", tmp=tmp_path)
    argv = [a.format(**values) for a in argv]
    default_out = [] if "-o" in argv else ["-o", str(tmp_path / "o.png")]
    code, err = run(capsys, *FAST, *default_out, *argv)  # later flags win
    assert_one_line_error(code, err, *[n.format(**values) for n in needles])
    assert not (tmp_path / "o.png").exists()


def test_unwritable_output(tmp_path, images, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        code, err = run(capsys, images["content"], images["style"], "-o", locked / "o.png", *FAST)
        assert_one_line_error(code, err, "cannot be written")
    finally:
        locked.chmod(0o700)


def test_ctrl_c_saves_current_image(tmp_path, images, capsys, monkeypatch):
    monkeypatch.setattr(cli, "progress_bar", interrupting_bar(2))
    out = tmp_path / "o.png"
    code, err = run(capsys, images["content"], images["style"], "-o", out, *FAST)
    assert code == 130 and "interrupted; saved iteration 1" in err
    assert load_image(out).shape == (27, 32, 3)


def test_existing_output_is_only_replaced_when_finished(tmp_path, images, capsys, monkeypatch):
    out = tmp_path / "o.png"
    write_image(out, 10, 10, 5)
    before = out.read_bytes()
    from nst_keras import gatys

    def boom(*a, **k):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(gatys, "stylize", boom)
    with pytest.raises(RuntimeError):
        cli.main([images["content"], images["style"], "-o", str(out), *FAST])
    assert out.read_bytes() == before


def test_grayscale_and_rgba_inputs_run(tmp_path, capsys):
    c = write_image(tmp_path / "g.png", 40, 40, 0, mode="L")
    s = write_image(tmp_path / "a.png", 40, 40, 1, mode="RGBA")
    code, err = run(capsys, c, s, "-o", tmp_path / "o.png", *FAST)
    assert code == 0, err
    assert np.isfinite(load_image(tmp_path / "o.png")).all()


def test_check_output_path_same_file_through_other_spelling(tmp_path):
    path = write_image(tmp_path / "x.png")
    with pytest.raises(Exception, match="also an input"):
        cli_common.check_output_path(str(tmp_path / "." / "x.png"), [path])
