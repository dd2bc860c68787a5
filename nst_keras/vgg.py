"""Facts of the VGG networks every other module asks for, and the preprocess / deprocess pair.

Layer names are Keras's (block4_conv2); images enter the networks as [B, H, W, 3] RGB in [0, 1]
and only this module knows about BGR order, the 0-255 range and the ImageNet mean pixel
(Keras's 'caffe' preprocessing). Written with keras.ops (any backend); numpy-only otherwise.
"""
import difflib
import re

import numpy as np

from .errors import UserError

MODELS = ("vgg16", "vgg19")
POOLINGS = ("max", "avg")
_BLOCK_CONVS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
BLOCK_CHANNELS = (64, 128, 256, 512, 512)  # output channels of every conv layer of a VGG block
# Mean pixel of ImageNet in BGR order (keras.applications "caffe" preprocessing).
IMAGENET_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def layer_names(model):
    """Keras names of the conv and pool layers of `model`, in network order."""
    names = []
    for block, convs in enumerate(_BLOCK_CONVS[model], start=1):
        names += [f"block{block}_conv{i}" for i in range(1, convs + 1)] + [f"block{block}_pool"]
    return names

def check_model(model):
    if model not in MODELS:
        hint = difflib.get_close_matches(str(model), MODELS, n=1)
        raise UserError(f"unknown model '{model}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                        + f"; accepted: {', '.join(MODELS)}")

def validate_layers(model, names):
    """Raise UserError for a layer name that `model` does not have, with a did-you-mean hint."""
    check_model(model)
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

def map_layers(names, model):
    """Names valid for `model`: a layer it lacks (VGG19's block3_conv4) maps to the last conv
    of the same block."""
    known = layer_names(model)
    return [n if n in known else f"block{n[5]}_conv{_BLOCK_CONVS[model][int(n[5]) - 1]}" for n in names]


def preprocess(images):
    """[B, H, W, 3] RGB in [0, 1] -> BGR in 0-255 minus the ImageNet mean (Keras 'caffe' mode).

    Works in the images' float dtype (float32, or float64 for decoupled mode's exact features).
    """
    from keras import ops

    images = ops.convert_to_tensor(images)
    return ops.flip(images * 255.0, axis=-1) - ops.convert_to_tensor(IMAGENET_MEAN_BGR, images.dtype)


def deprocess(x):
    """Inverse of preprocess: BGR minus mean -> RGB in [0, 1] (not clipped)."""
    from keras import ops

    x = ops.convert_to_tensor(x)
    return ops.flip(x + ops.convert_to_tensor(IMAGENET_MEAN_BGR, x.dtype), axis=-1) / 255.0
