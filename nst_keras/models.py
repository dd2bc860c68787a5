"""VGG feature extractors: the network built, its weights put in (weights.py), run in the chosen
precision (precision.py) and pooling; images in [0, 1] in, {layer name: features} out.

The network's facts (layer names, strides, channels, preprocessing) live in vgg.py, weight
sources in weights.py, precision detection in precision.py; their public names are re-exported
here for callers of this module.
"""
import contextlib
import dataclasses

import numpy as np

from .precision import PRECISIONS, cpu_model_and_flags, native_bfloat16, resolve_precision  # noqa: F401
from .vgg import (BLOCK_CHANNELS, IMAGENET_MEAN_BGR, MODELS, POOLINGS, check_model, deprocess, layer_block,  # noqa: F401
                  layer_channels, layer_names, layer_stride, map_layers, min_image_side, preprocess, validate_layers)
from .weights import (DOWNLOAD_TIMEOUT, IMAGENET_FILES, IMAGENET_URL, WEIGHT_SOURCES, hed_backbone_weights,  # noqa: F401
                      imagenet_weights_file, keras_cache_paths, load_h5, resolve_weights)

__all__ = ["FeatureExtractor", "NetworkOp", "build_extractor",
           # re-exported from vgg, weights and precision
           "BLOCK_CHANNELS", "IMAGENET_MEAN_BGR", "MODELS", "POOLINGS", "check_model", "deprocess", "layer_block",
           "layer_channels", "layer_names", "layer_stride", "map_layers", "min_image_side", "preprocess",
           "validate_layers", "DOWNLOAD_TIMEOUT", "IMAGENET_FILES", "IMAGENET_URL", "WEIGHT_SOURCES",
           "hed_backbone_weights", "imagenet_weights_file", "keras_cache_paths", "load_h5", "resolve_weights",
           "PRECISIONS", "cpu_model_and_flags", "native_bfloat16", "resolve_precision"]


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
            load_h5(base, model, path)
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

def build_extractor(model="vgg19", weights="auto", layers=("block5_conv1",), seed=0, notify=None, pooling="max",
                    precision="float32"):
    """A FeatureExtractor; see its docstring."""
    return FeatureExtractor(model=model, weights=weights, layers=layers, seed=seed, notify=notify, pooling=pooling,
                            precision=precision)
