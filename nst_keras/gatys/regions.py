"""Regional styles: one mask per style image, masked Gram matrices normalised by the mask.

A mask is a grey image, white (1) where its style applies and black (0) where it does not;
grey values weight positions softly. At a layer of h x w positions the mask is averaged over
each position's pixels (box filter to h x w), and the masked Gram is

    G_m = sum_p m_p F_p F_p^T / sum_p m_p,

so a white mask gives exactly the ordinary size-normalised Gram (losses.gram_matrix) and a 0/1
mask gives the Gram of the features inside the region, normalised by the region's own size:
a small region is pushed towards its style as strongly as a large one (departure from Gatys et
al., who have no regions; this normalisation is our choice, documented in the README).
"""
import numpy as np
from PIL import Image

from ..errors import UserError

# Relative difference of aspect ratios (h/w) accepted between a mask and the content.
ASPECT_TOLERANCE = 0.02
MIN_MASK_SUM = 1e-6  # a layer mask whose positions sum below this counts as empty


def load_mask(path):
    """A mask image as float32 [H, W] in [0, 1] (its Rec. 601 luminance)."""
    from ..color import luminance
    from ..image import load_image

    return np.clip(luminance(load_image(path, "style mask")), 0.0, 1.0)


def check_masks(masks, content_shape, num_styles, names=None):
    """Raise UserError unless there is one non-empty mask per style with the content's aspect ratio."""
    names = names or [f"#{i + 1}" for i in range(len(masks))]
    if len(masks) != num_styles:
        raise UserError(f"{len(masks)} style masks for {num_styles} style images; accepted: one mask per style image")
    ch, cw = content_shape[:2]
    for mask, name in zip(masks, names):
        mh, mw = mask.shape[:2]
        if abs((mh / mw) / (ch / cw) - 1.0) > ASPECT_TOLERANCE and (mh, mw) != (ch, cw):
            raise UserError(f"style mask '{name}' is {mw}x{mh} px but the content is {cw}x{ch}; accepted: a mask "
                            "with the content's aspect ratio (any size)")
        if float(np.max(mask)) <= 0.0:
            raise UserError(f"style mask '{name}' is black everywhere; accepted: a mask that is white where "
                            "its style applies")


def resize_mask(mask, shape):
    """Average a [H, W] mask down (box filter) or interpolate it up to shape (h, w)."""
    h, w = shape
    if mask.shape[:2] == (h, w):
        return np.asarray(mask, np.float32)
    plane = Image.fromarray(np.ascontiguousarray(mask, dtype=np.float32), "F")
    down = h * w < mask.shape[0] * mask.shape[1]
    plane = plane.resize((w, h), Image.Resampling.BOX if down else Image.Resampling.BILINEAR)
    return np.clip(np.asarray(plane, np.float32), 0.0, 1.0)


def layer_masks(masks, shape):
    """Masks stacked as float32 [S, h * w] at a layer of shape (h, w).

    Raises:
        UserError: a mask vanishes at this resolution (its region is smaller than one position).
    """
    out = np.stack([resize_mask(m, shape).reshape(-1) for m in masks])
    for i, row in enumerate(out):
        if row.sum() < MIN_MASK_SUM:
            raise UserError(f"style mask #{i + 1} covers less than one position of a {shape[1]}x{shape[0]} layer; "
                            "accepted: a larger white region or a larger --size")
    return out


def masked_grams(features, masks):
    """Masked Gram matrices [S, C, C] of features [1, h, w, C] for masks [S, h * w] (tensors).

    G_s = F^T diag(m_s) F / sum(m_s): the module docstring's normalisation.
    """
    import tensorflow as tf

    shape = tf.shape(features)
    flat = tf.reshape(features, [shape[1] * shape[2], shape[3]])          # [P, C]
    masks = tf.cast(masks, features.dtype)
    weighted = masks[:, :, None] * flat[None]                              # [S, P, C]
    grams = tf.matmul(weighted, tf.broadcast_to(flat[None], tf.shape(weighted)), transpose_a=True)
    return grams / tf.reduce_sum(masks, axis=1)[:, None, None]
