import numpy as np
import pytest

from nst_keras import gatys
from nst_keras.gatys import tiles
from nst_keras.gatys.config import GatysConfig
from conftest import make_image
from test_cli import FAST, assert_one_line_error, run

LAYERS = dict(content_layers=("block2_conv1",), style_layers=("block1_conv1", "block2_conv1"))


@pytest.mark.parametrize("length,tile,overlap", [(100, 32, 8), (64, 32, 8), (33, 32, 4), (20, 32, 8), (257, 64, 16)])
def test_tile_starts_cover_with_overlap(length, tile, overlap):
    starts = tiles.tile_starts(length, tile, overlap)
    size = min(tile, length)
    assert starts[0] == 0 and starts[-1] + size == length
    for a, b in zip(starts, starts[1:]):
        assert size - (b - a) >= overlap  # neighbours share at least `overlap` px


def test_blend_weights_hand_over_smoothly():
    plan = tiles.plan_tiles((50, 56), 32, 8)
    assert len(plan) == 4 and {(t.height, t.width) for t in plan} == {(32, 32)}
    assert np.all(tiles.blend_weights(plan[0], []) == 1)
    first = tiles.blend_weights(plan[0], [], plan[1:])
    second = tiles.blend_weights(plan[1], plan[:1], plan[2:])
    shared = plan[0].left + plan[0].width - plan[1].left
    assert np.all(first[0, -1] == 0) and np.all(second[:, 0] == 0)
    # in the final image the shared columns are: tile 0, a mix (tile 0 still at weight 1), then tile 1
    top = first[0, -shared:], second[0, :shared]
    assert np.all(top[1][shared // 2:] == 1) and np.all(top[0][:shared // 2] == 1)
    assert np.all(np.diff(top[1]) >= 0) and np.all(np.diff(top[0]) <= 0)
    last = tiles.blend_weights(plan[3], plan[:3])
    assert last[0, 0] == 0 and last[-1, -1] == 1


def test_chunked_style_targets_match_whole_image(tiny_extractor):
    style = make_image(40, 56, 3)
    layers = ["block1_conv1", "block2_conv1"]
    whole = gatys.compute_style_targets(tiny_extractor, [style], layers, [1.0])
    chunked = tiles.chunked_style_targets(tiny_extractor, [style], layers, [1.0], chunk=16, margin=16)
    for w, c in zip(whole, chunked):
        np.testing.assert_allclose(c, w, rtol=1e-4, atol=1e-6)


def _column_steps(image):
    return np.abs(np.diff(image, axis=1)).mean(axis=(0, 2))  # step between column j and j + 1


def _row_steps(image):
    return np.abs(np.diff(image, axis=0)).mean(axis=(1, 2))


def test_no_seam_across_tile_boundaries(tiny_extractor):
    content, style = make_image(48, 64, 0), make_image(40, 40, 1)
    config = GatysConfig(size=64, tile_size=32, tile_overlap=8, tile_iterations=20, iterations=10,
                         coarse_size=0, style_weight=1.0, model="vgg16", weights="random", **LAYERS)
    result = gatys.stylize(content, style, config, extractor=tiny_extractor)
    image = result.image
    assert image.shape == (48, 64, 3) and len(result.metadata["tiles"]) == 6
    plan = tiles.plan_tiles((48, 64), 32, 8)
    assert result.history[-1]["tile"] == len(plan) - 1
    col_edges = sorted({t.left - 1 for t in plan if t.left} | {t.left + t.width - 1 for t in plan} - {63})
    row_edges = sorted({t.top - 1 for t in plan if t.top} | {t.top + t.height - 1 for t in plan} - {47})
    for steps, edges in ((_column_steps(image), col_edges), (_row_steps(image), row_edges)):
        inside = np.delete(steps, edges)
        assert steps[edges].max() <= inside.max(), (steps[edges], inside.max())
    # the tiles changed the base result (they did something) without drifting from it
    base = gatys.stylize(content, style, config.replace(size=32, tile_size=0), extractor=tiny_extractor).image
    from nst_keras.image import resize_to

    diff = np.abs(image - resize_to(base, (48, 64)))
    assert diff.mean() > 1e-3
    assert abs(image.mean() - resize_to(base, (48, 64)).mean()) < 0.05


def test_tiled_cli_and_small_sizes_fall_back(tmp_path, images, capsys):
    code, err = run(capsys, images["content"], images["style"], "-o", tmp_path / "o.png", *FAST,
                    "--tile-size", "16", "--tile-overlap", "4", "--tile-iterations", "2", "--checkpoint-every", "5")
    assert code == 0, err
    from nst_keras.image import load_image, read_png_metadata

    assert load_image(tmp_path / "o_0005.png").shape == (27, 32, 3)  # a tile-stage snapshot is the whole canvas

    meta = read_png_metadata(tmp_path / "o.png")
    assert meta["base_size"] == 16 and len(meta["tiles"]) == len(tiles.plan_tiles((27, 32), 16, 4))
    code, err = run(capsys, images["content"], images["style"], "-o", tmp_path / "p.png", *FAST, "--tile-size", "64",
                    "--tile-overlap", "8")
    assert code == 0 and "tiles" not in read_png_metadata(tmp_path / "p.png")


@pytest.mark.parametrize("argv,needles", [
    (["--tile-size", "16", "--tile-overlap", "9"], ["tile_overlap 9 for tile_size 16", "half the tile size"]),
    (["--tile-size", "-1"], ["tile_size -1"]),
    (["--tile-size", "2", "--tile-overlap", "1"], ["tiles of 2x2 px are too small", "--tile-size of at least 4"]),
    (["--tile-size", "16", "--tile-overlap", "4", "--style-masks", "{content}"], ["style_masks cannot be combined with tiles"]),
])
def test_tiles_bad_inputs(tmp_path, images, capsys, argv, needles):
    argv = [a.format(content=images["content"]) for a in argv]
    code, err = run(capsys, images["content"], images["style"], "-o", tmp_path / "o.png", *FAST, *argv)
    assert_one_line_error(code, err, *needles)


def test_style_size_is_kept_relative_to_the_output_in_the_base_pass(tiny_extractor, monkeypatch):
    seen = []
    real = gatys.fit_style

    def spy(style, shape, config, index=0):
        out = real(style, shape, config, index)
        seen.append((max(shape), max(out.shape[:2])))
        return out

    from nst_keras.gatys import pipeline

    monkeypatch.setattr(pipeline, "fit_style", spy)
    config = GatysConfig(size=64, tile_size=32, tile_overlap=8, tile_iterations=1, iterations=1, coarse_size=0,
                         style_size=48, model="vgg16", weights="random", **LAYERS)
    gatys.stylize(make_image(48, 64, 0), make_image(40, 40, 1), config, extractor=tiny_extractor)
    assert (32, 24) in seen and (64, 48) in seen  # style/output ratio 3/4 in the base pass and the tiles
