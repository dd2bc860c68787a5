"""Keras losses for style transfer: `model.compile(loss=nst_keras.losses.PerceptualLoss())`.

`y_true` and `y_pred` are images [B, H, W, 3] in [0, 1]; each loss returns one value per image and
leaves the reduction to Keras; each is registered for serialisation. They are built on the pure
functions of functional.py (re-exported here) and the shared network of layers.VGGFeatures;
their default layers and weights are GatysConfig's.
"""
import keras
import numpy as np
from keras import ops

from .functional import (TV_FORMS, content_layer_loss, gram_matrix, style_layer_loss,  # noqa: F401
                         total_variation_loss)
from .gatys.config import DEFAULT_STYLE_LAYERS, GatysConfig
from .layers import VGGFeatures

DEFAULT_CONTENT_LAYERS = GatysConfig().content_layers
__all__ = ["PerceptualLoss", "StyleLoss", "TotalVariationLoss", "StyleTransferLoss", "TV_FORMS", "gram_matrix",
           "style_layer_loss", "content_layer_loss", "total_variation_loss"]


def _layer_weights(layers, layer_weights):
    if layer_weights is None:
        return [1.0 / len(layers)] * len(layers)
    weights = [float(w) for w in layer_weights]
    if len(weights) != len(layers) or any(not np.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError("Expected one non-negative weight per layer, not all 0. "
                         f"Received: layers={list(layers)}, layer_weights={list(layer_weights)}")
    return [w / sum(weights) for w in weights]


def _style_array(style_image):
    from .image import check_image, load_image

    if style_image is None:
        return None
    if isinstance(style_image, str):
        return load_image(style_image, "style image")
    try:
        return check_image(style_image, "style_image")
    except Exception as exc:
        raise ValueError(f"Expected style_image to be an image [H, W, 3] in [0, 1] or a file path. {exc}") from None


class _FeatureLoss(keras.losses.Loss):
    """A loss on VGG features of the images (network shared per process: layers.shared_network)."""

    def __init__(self, layers, model, weights, pooling, name, reduction, dtype):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.features = VGGFeatures(layers=layers, model=model, weights=weights, pooling=pooling)
        self.layer_names, self.model, self.weights, self.pooling = (
            list(self.features.layer_names), model, weights, pooling)

    def _config(self, **extra):
        return {"name": self.name, "reduction": self.reduction, "model": self.model, "weights": self.weights,
                "pooling": self.pooling, **extra}


@keras.saving.register_keras_serializable(package="nst_keras")
class PerceptualLoss(_FeatureLoss):
    """Feature reconstruction loss between y_true and y_pred (Johnson, Alahi & Fei-Fei 2016).

    Per image: sum over `layers` of weight x mean((F(y_pred) - F(y_true))^2) / 2 (content_layer_loss).

    Args:
        layers: Keras layer names of the VGG (default block4_conv2).
        layer_weights: one relative weight per layer (default equal; normalised to sum 1).
        model, weights, pooling: the network, as for layers.VGGFeatures.
    """

    def __init__(self, layers=DEFAULT_CONTENT_LAYERS, layer_weights=None, model="vgg19", weights="auto",
                 pooling="max", name="perceptual_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(layers, model, weights, pooling, name, reduction, dtype)
        self.layer_weights = None if layer_weights is None else list(layer_weights)
        self._weights = _layer_weights(self.layer_names, layer_weights)

    def call(self, y_true, y_pred):
        true, pred = self.features(y_true), self.features(y_pred)
        return sum(w * content_layer_loss(pred[n], ops.stop_gradient(true[n]))
                   for n, w in zip(self.layer_names, self._weights))

    def get_config(self):
        return self._config(layers=self.layer_names, layer_weights=self.layer_weights)


@keras.saving.register_keras_serializable(package="nst_keras")
class StyleLoss(_FeatureLoss):
    """Gram-matrix style loss of y_pred (Gatys et al. 2016, eq. 4 with size-normalised Grams).

    Against a fixed style image's Grams (computed once) when `style_image` is given (an image
    [H, W, 3] in [0, 1] or a file path), else against y_true's Grams (a texture loss).

    Args:
        style_image: the style, or None.
        layers, layer_weights: style layers (default block1_conv1 ... block5_conv1) and their weights.
        model, weights, pooling: the network, as for layers.VGGFeatures.
    """

    def __init__(self, style_image=None, layers=DEFAULT_STYLE_LAYERS, layer_weights=None, model="vgg19",
                 weights="auto", pooling="max", name="style_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(layers, model, weights, pooling, name, reduction, dtype)
        self.style_image = _style_array(style_image)
        self.style_path = style_image if isinstance(style_image, str) else None
        self.layer_weights = None if layer_weights is None else list(layer_weights)
        self._weights = _layer_weights(self.layer_names, layer_weights)
        self._targets = None
        if self.style_image is not None:  # the style's Grams [1, C, C], once, eagerly (outside any trace)
            feats = self.features(ops.convert_to_tensor(self.style_image[None]))
            self._targets = {n: ops.convert_to_numpy(gram_matrix(feats[n])) for n in self.layer_names}

    def call(self, y_true, y_pred):
        pred = self.features(y_pred)
        targets = self._targets
        if targets is None:
            true = self.features(y_true)
            targets = {n: ops.stop_gradient(gram_matrix(true[n])) for n in self.layer_names}
        return sum(w * style_layer_loss(gram_matrix(pred[n]), targets[n])
                   for n, w in zip(self.layer_names, self._weights))

    def get_config(self):
        style = self.style_path or (None if self.style_image is None else self.style_image.tolist())
        return self._config(style_image=style, layers=self.layer_names, layer_weights=self.layer_weights)


@keras.saving.register_keras_serializable(package="nst_keras")
class TotalVariationLoss(keras.losses.Loss):
    """Total variation of y_pred (total_variation_loss); y_true is not used."""

    def __init__(self, form="power", name="total_variation_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if form not in TV_FORMS:
            raise ValueError(f"Unknown total-variation form; accepted: {', '.join(TV_FORMS)}. Received: form={form!r}")
        self.form = form

    def call(self, y_true, y_pred):
        return total_variation_loss(y_pred, self.form)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "form": self.form}


@keras.saving.register_keras_serializable(package="nst_keras")
class StyleTransferLoss(keras.losses.Loss):
    """The whole Gatys / Johnson objective with y_true as the content image: what a fast style
    network trains on. Per image:

        content_weight x content + style_weight x style(style_image) + tv_weight x TV(y_pred)

    Defaults are GatysConfig's (the one home of the defaults), so a network trained on it matches
    what nst-gatys optimises.
    """

    def __init__(self, style_image, content_weight=None, style_weight=None, tv_weight=None, content_layers=None,
                 style_layers=None, style_layer_weights=None, tv_form=None, model="vgg19", weights="auto",
                 pooling="max", name="style_transfer_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        d = GatysConfig()
        pick = lambda value, default: default if value is None else value  # noqa: E731
        self.content_weight, self.style_weight, self.tv_weight = (
            float(pick(content_weight, d.content_weight)), float(pick(style_weight, d.style_weight)),
            float(pick(tv_weight, d.tv_weight)))
        for key in ("content_weight", "style_weight", "tv_weight"):
            if not np.isfinite(getattr(self, key)) or getattr(self, key) < 0:
                raise ValueError(f"Expected a finite weight >= 0. Received: {key}={getattr(self, key)}")
        self.content = PerceptualLoss(list(pick(content_layers, d.content_layers)), None, model, weights, pooling)
        self.style = StyleLoss(style_image, list(pick(style_layers, d.style_layers)), style_layer_weights, model,
                               weights, pooling)
        self.tv = TotalVariationLoss(pick(tv_form, d.tv_form))

    def call(self, y_true, y_pred):
        return (self.content_weight * self.content.call(y_true, y_pred)
                + self.style_weight * self.style.call(y_true, y_pred)
                + self.tv_weight * self.tv.call(y_true, y_pred))

    def get_config(self):
        style = self.style.get_config()
        return {"name": self.name, "reduction": self.reduction, "style_image": style["style_image"],
                "content_weight": self.content_weight, "style_weight": self.style_weight, "tv_weight": self.tv_weight,
                "content_layers": self.content.layer_names, "style_layers": self.style.layer_names,
                "style_layer_weights": style["layer_weights"], "tv_form": self.tv.form, "model": self.style.model,
                "weights": self.style.weights, "pooling": self.style.pooling}
