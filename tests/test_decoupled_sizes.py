"""Decoupled mode's size rule: a working shape with too few deep positions per live channel is
refused up front (exit 2, naming the smallest --size that works) or run with a one-line warning."""
import numpy as np
import pytest
from PIL import Image

from nst_keras import decoupled as dc
from nst_keras.cli.decoupled import main
from nst_keras.decoupled.sizes import MIN_POSITIONS_PER_CHANNEL, check_positions, positions, shortfall, smallest_size
from nst_keras.errors import UserError
from nst_keras.image import size_for_long_side

THREE = dc.LAYERS[:3]


def _reference(live):
    """A Reference whose layers have `live[name]` live channels (the rest dead)."""
    from nst_keras.vgg import layer_channels

    mean = {n: np.ones(layer_channels(n)) for n in live}
    dead = {n: np.arange(live[n], layer_channels(n)) for n in live}
    return dc.Reference(mean=mean, std={n: m * 0 for n, m in mean.items()}, dead=dead, shape=None, draws=1)


def test_positions_follow_the_pools():
    assert positions((96, 128), "block5_conv1") == 6 * 8
    assert positions((108, 192), "block5_conv1") == 6 * 12  # 108 -> 54 -> 27 -> 13 -> 6
    assert positions((40, 48), "block1_conv1") == 40 * 48


@pytest.mark.parametrize("aspect", [(3, 4), (4, 3), (9, 16)])
def test_smallest_size_is_the_first_with_enough_positions_per_live_channel(aspect):
    """The rule counts positions per live channel (not the short side): the size it names passes
    for this aspect ratio and one pixel less does not."""
    live = {"block5_conv1": 213}
    shape = size_for_long_side(aspect, 128)
    reference = _reference({"block1_conv1": 64, "block5_conv1": 213})
    assert [s[0] for s in shortfall(shape, reference, ("block1_conv1", "block5_conv1"))] == ["block5_conv1"]
    size = smallest_size(shape, live, 1024)
    assert positions(size_for_long_side(aspect, size), "block5_conv1") >= MIN_POSITIONS_PER_CHANNEL * 213
    assert positions(size_for_long_side(aspect, size - 1), "block5_conv1") < MIN_POSITIONS_PER_CHANNEL * 213
    assert not shortfall(size_for_long_side(aspect, size), reference, ("block5_conv1",))


def test_square_128_runs_with_a_warning_up_front_and_256_without():
    # 128x128 (0.30 per channel) reached 60 dB with one pair and 41.8 dB with another; 128x96 never.
    reference = _reference({"block5_conv1": 213})
    config = dc.DecoupledConfig(size=128, layers=("block5_conv1",))
    assert not shortfall((128, 128), reference, ("block5_conv1",))
    assert shortfall((96, 128), reference, ("block5_conv1",))
    said = []
    assert check_positions((128, 128), reference, config, said.append) == []
    assert len(said) == 1 and "may stop below 60 dB" in said[0] and "--size 176 or more" in said[0], said
    said.clear()
    assert check_positions((256, 256), reference, config.replace(size=256), said.append) == [] and not said


def test_refusal_names_the_smallest_size_and_allow_imprecise_only_warns():
    reference = _reference({"block5_conv1": 213})
    config = dc.DecoupledConfig(size=128, layers=("block5_conv1",))
    with pytest.raises(UserError, match=r"block5_conv1 has 48 positions for 213 live channels.*--size 160 or more"):
        check_positions((96, 128), reference, config)
    said = []
    short = check_positions((96, 128), reference, config.replace(allow_imprecise=True), said.append)
    assert short and len(said) == 1 and "running anyway" in said[0] and "--size 160" in said[0]
    assert check_positions((96, 128), reference, config.replace(method="penalty")) == short  # no promise, no refusal


def test_transfer_refuses_before_any_stage(tiny_extractor):
    """Random weights, three layers: a 4:3 image of 16x12 leaves block3 with 12 positions."""
    config = dc.DecoupledConfig(size=16, weights="random", layers=THREE, noise_draws=2)
    content = np.full((12, 16, 3), 0.5, np.float32)
    seen = []
    with pytest.raises(UserError, match=r"block3_conv1 has 12 positions .* accepted: --size \d+ or more"):
        dc.decoupled_transfer(content, content, config, callback=seen.append, extractor=tiny_extractor)
    assert not seen  # no stage started


def test_cli_refuses_a_size_too_small_for_the_shape_with_exit_2(tmp_path, capsys):
    paths = []
    for name, (h, w) in (("content", (27, 48)), ("style", (48, 27))):  # 16:9 content, 9:16 style
        paths.append(str(tmp_path / f"{name}.png"))
        Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(paths[-1])
    out = str(tmp_path / "out.png")
    code = main([*paths, "-o", out, "--size", "16", "--weights", "random", "--layers", ",".join(THREE), "--quiet",
                 "--noise-draws", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "accepted: --size" in err[0] and "block3_conv1" in err[0], err


def test_without_a_size_the_run_moves_to_the_smallest_accepted_size(tiny_extractor, monkeypatch):
    """No size given: the start size (DEFAULT_SIZE, 16 here) is refused for a 4:3 image, so the run
    takes the smallest size the rule accepts, says so in one line and records it in the config."""
    from nst_keras.decoupled import pipeline

    monkeypatch.setattr(pipeline, "DEFAULT_SIZE", 16)
    config = dc.DecoupledConfig(weights="random", layers=THREE, noise_draws=2)
    assert config.size is None
    content = np.random.default_rng(0).random((60, 80, 3)).astype(np.float32)
    said = []
    run, c, s, net, _, reference = pipeline.working_size(content, content, config, tiny_extractor, said.append)
    at_start = dc.build_net(config.replace(size=16), (12, 16), tiny_extractor)[0]
    short = shortfall((12, 16), dc.reference_features(at_start, 2, 0, config.dead_tolerance), THREE)
    expected = smallest_size((12, 16), {n: live for n, _, live in short}, config.max_size)
    assert short and expected > 16
    assert run.size == expected and net.shape == size_for_long_side((60, 80), expected) == c.shape[:2] == s.shape[:2]
    assert len(said) == 1 and said[0].startswith(f"size {expected}:") and "block3_conv1" in said[0], said
    assert check_positions(net.shape, reference, run, [].append) == []  # accepted (0.3-0.5: a warning)
    # A size the user gives is never changed: it is refused instead.
    assert pipeline.working_size(content, content, config.replace(size=16), tiny_extractor, said.append)[0].size == 16
    assert len(said) == 1


def test_the_size_flag_defaults_to_the_size_rule():
    from nst_keras.cli.decoupled import build_parser

    parser = build_parser()
    assert parser.parse_args(["a.png", "b.png", "-o", "c.png"]).size is None
    assert parser.parse_args(["a.png", "b.png", "-o", "c.png", "--size", "160"]).size == 160
    with pytest.raises(UserError, match="size 0"):
        dc.DecoupledConfig(size=0).validate()


def test_without_a_size_a_panorama_moves_up_until_its_short_side_is_enough(tiny_extractor):
    """20:1 at 128 would be 128x6, below the 8 px block3 needs on the short side: the run says so
    and takes the first long side that gives 8 (150 for 400x20)."""
    from nst_keras.decoupled.pipeline import working_size

    config = dc.DecoupledConfig(weights="random", layers=THREE, noise_draws=2)
    pano = np.random.default_rng(0).random((20, 400, 3)).astype(np.float32)
    said = []
    run, content, *_ = working_size(pano, pano, config, tiny_extractor, said.append)
    assert min(size_for_long_side((20, 400), run.size - 1)) < 8 <= min(content.shape[:2])
    assert len(said) == 1 and said[0].startswith(f"size {run.size}: at size 128 a 128x6 image has 6 px"), said
