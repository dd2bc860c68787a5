import os

import numpy as np

from nst_keras.gatys import plan, tiles
from nst_keras.gatys.config import GatysConfig
from test_cli import FAST


def test_dry_run_prints_plan_and_writes_nothing(tmp_path, images, capsys):
    code = __import__("nst_keras.cli.gatys", fromlist=["main"]).main(
        [images["content"], images["style"], "-o", str(tmp_path / "o.png"), *FAST, "--size", "48",
         "--coarse-size", "16", "--tile-size", "32", "--tile-overlap", "8", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("output 48x40")
    assert "scale 1/2: 16x13" in out and "scale 2/2: 32x27" in out
    assert "tiles: 4 tiles of 32x32" in out and "predicted peak memory" in out and "s/evaluation" in out
    assert not os.path.exists(tmp_path / "o.png")


def test_plan_matches_what_stylize_does(tiny_extractor):
    from nst_keras.gatys import stylize

    config = GatysConfig(size=40, coarse_size=16, iterations=2, coarse_iterations=1, model="vgg16", weights="random",
                         content_layers=("block2_conv1",), style_layers=("block1_conv1",))
    content = np.random.default_rng(0).uniform(size=(30, 40, 3)).astype(np.float32)
    p = plan.plan_run(content.shape, config)
    result = stylize(content, content, config, extractor=tiny_extractor)
    assert [max(s["shape"]) for s in p["stages"]] == result.metadata["scales"]
    assert p["shape"] == result.image.shape[:2]
    tiled = plan.plan_run((300, 400), config.replace(size=400, tile_size=128, tile_overlap=32))
    assert tiled["stages"][-1]["count"] == len(tiles.plan_tiles((300, 400), 128, 32))


def test_time_and_memory_grow_with_pixels():
    small = plan.predict_seconds_per_evaluation((100, 100), "vgg16", ["block5_conv1"])
    big = plan.predict_seconds_per_evaluation((200, 200), "vgg16", ["block5_conv1"])
    assert abs(big / small - 4.0) < 1e-9
    assert plan.forward_flops_per_pixel("vgg19", ["block5_conv1"]) > plan.forward_flops_per_pixel("vgg16", ["block5_conv1"])
    p = plan.plan_run((512, 512), GatysConfig(model="vgg16", size=1024, max_size=4096))
    assert p["peak_bytes"] == p["stages"][-1]["peak_bytes"]
