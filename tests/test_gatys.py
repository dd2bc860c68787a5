import numpy as np
import pytest

from nst_keras import gatys
from nst_keras.gatys.config import GatysConfig
from nst_keras.errors import UserError
from conftest import make_image

LAYERS = dict(content_layers=("block2_conv1",), style_layers=("block1_conv1", "block3_conv1"))


def tiny_config(**kw):
    base = dict(size=32, model="vgg16", weights="random", iterations=8, coarse_size=0, **LAYERS)
    base.update(kw)
    return GatysConfig(**base)


@pytest.fixture(scope="module")
def pair():
    return make_image(32, 32, 0), make_image(32, 32, 1)


def test_loss_decreases_and_bounds_hold(pair, tiny_extractor):
    content, style = pair
    result = gatys.stylize(content, style, tiny_config(init="noise", style_weight=1.0), extractor=tiny_extractor)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 8 and result.stop_reason == "completed"
    assert losses[-1] < 0.5 * losses[0]
    assert result.image.min() >= 0.0 and result.image.max() <= 1.0
    assert result.metadata["extractor"]["weights"] == "random"


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_tf_optimizers_decrease_loss_and_clip(pair, tiny_extractor, optimizer):
    content, style = pair
    cfg = tiny_config(optimizer=optimizer, init="noise", iterations=15, style_weight=1.0)
    result = gatys.stylize(content, style, cfg, extractor=tiny_extractor)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0]
    assert result.image.min() >= 0.0 and result.image.max() <= 1.0


def test_lbfgs_does_not_stall_on_a_tiny_loss(pair, tiny_extractor):
    """Scaled 1e-12 down, the loss must still take every requested iteration and fall."""
    content, style = pair
    cfg = tiny_config(init="noise", content_weight=1e-12, style_weight=1e-12, tv_weight=0.0, iterations=10)
    result = gatys.stylize(content, style, cfg, extractor=tiny_extractor)
    assert len(result.history) == 10
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]


def test_seed_determinism(pair, tiny_extractor):
    content, style = pair
    runs = [gatys.stylize(content, style, tiny_config(init="noise", seed=s, iterations=3), extractor=tiny_extractor)
            for s in (1, 1, 2)]
    np.testing.assert_array_equal(runs[0].image, runs[1].image)
    assert not np.array_equal(runs[0].image, runs[2].image)


def test_non_finite_loss_keeps_last_good_image(pair, tiny_extractor, monkeypatch):
    content, style = pair
    real = gatys.Evaluator.evaluate
    count = {"n": 0}

    def flaky(self, x):
        count["n"] += 1
        if count["n"] > 6:
            raise gatys.NonFiniteLoss("nan")
        return real(self, x)

    monkeypatch.setattr(gatys.Evaluator, "evaluate", flaky)
    result = gatys.stylize(content, style, tiny_config(init="noise", iterations=20), extractor=tiny_extractor)
    assert result.stop_reason == "non-finite loss"
    assert 1 <= len(result.history) < 20
    assert np.all(np.isfinite(result.image))


def test_callback_receives_progress_and_can_stop(pair, tiny_extractor):
    content, style = pair
    seen = []

    def callback(p):
        seen.append(p)
        return p.iteration == 3

    result = gatys.stylize(content, style, tiny_config(), callback=callback, extractor=tiny_extractor)
    assert [p.iteration for p in seen] == [1, 2, 3] and result.stop_reason == "callback"
    assert seen[-1].image.shape == (32, 32, 3) and set(seen[-1].terms) == {"content", "style", "tv"}


def test_coarse_to_fine_schedule(pair, tiny_extractor):
    assert gatys.plan_scales(512, 128) == [128, 256, 512]
    assert gatys.plan_scales(500, 128) == [250, 500]
    assert gatys.plan_scales(512, 0) == [512]
    content, style = pair
    cfg = tiny_config(size=64, coarse_size=32, iterations=3, coarse_iterations=2)
    result = gatys.stylize(make_image(48, 64), style, cfg, extractor=tiny_extractor)
    assert [(h["scale"], h["width"]) for h in result.history] == [(0, 32)] * 2 + [(1, 64)] * 3
    assert result.image.shape == (48, 64, 3)


def test_style_fit_modes():
    tall = make_image(60, 30)
    assert gatys.fit_style(tall, (20, 40), GatysConfig(style_fit="resize")).shape == (20, 40, 3)
    assert gatys.fit_style(tall, (20, 40), GatysConfig(style_fit="crop")).shape == (20, 40, 3)
    kept = gatys.fit_style(tall, (20, 40), GatysConfig(style_fit="scale", style_scale=0.5))
    assert kept.shape == (20, 10, 3)  # aspect kept, long side = 0.5 * 40


def test_style_blend_weights_are_honoured(tiny_extractor):
    c, s1, s2 = make_image(32, 32, 0), make_image(32, 32, 1), make_image(32, 32, 2)
    cfg = tiny_config()
    e1 = gatys.Evaluator(tiny_extractor, c, [s1], cfg)
    e2 = gatys.Evaluator(tiny_extractor, c, [s2], cfg)
    blend = gatys.Evaluator(tiny_extractor, c, [s1, s2], cfg, [3.0, 1.0])
    for t1, t2, tb in zip(e1.style_targets, e2.style_targets, blend.style_targets):
        np.testing.assert_allclose(tb.numpy(), 0.75 * t1.numpy() + 0.25 * t2.numpy(), rtol=1e-5, atol=1e-6)


def test_bad_config_values():
    for kw, match in [(dict(style_weight=-1.0), "style_weight -1.0"), (dict(tv_weight=float("nan")), "tv_weight nan"),
                      (dict(optimizer="lbgfs"), "did you mean 'lbfgs'"), (dict(size=4096), "exceeds max_size"),
                      (dict(style_layer_weights=(1.0,)), "one weight per style layer")]:
        with pytest.raises(UserError, match=match):
            tiny_config(**kw).validate()


def test_image_too_small_for_deepest_layer(tiny_extractor):
    with pytest.raises(UserError, match="too small for layer block3_conv1"):
        gatys.stylize(make_image(32, 32), make_image(32, 32), tiny_config(size=6), extractor=tiny_extractor)


def test_public_api_is_importable():
    import nst_keras

    for name in nst_keras.__all__:
        assert getattr(nst_keras, name) is not None


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_non_finite_from_the_start_keeps_the_initial_image(pair, tiny_extractor, optimizer, monkeypatch):
    content, style = pair

    def always_nan(self, x):
        raise gatys.NonFiniteLoss("nan")

    monkeypatch.setattr(gatys.Evaluator, "evaluate", always_nan)
    result = gatys.stylize(content, style, tiny_config(optimizer=optimizer), extractor=tiny_extractor)
    assert result.stop_reason == "non-finite loss"
    np.testing.assert_allclose(result.image, np.clip(content, 0, 1))
