"""Colour control: colour-statistics transfer between images and luminance-only style transfer.

All functions take and return float32 [H, W, 3] RGB images in [0, 1].

References:
    Gatys, Bethge, Hertzmann & Shechtman (2017), "Preserving color in neural artistic style
    transfer" (arXiv:1606.05897): colour histogram matching of the style image (sec. 2.1, mean and
    covariance: Cholesky or symmetric square root) and luminance-only transfer in YIQ with the
    style luminance matched to the content's mean and standard deviation (sec. 2.2).
"""
import numpy as np

from .errors import UserError

COLOR_MATCHES = ("none", "meanvar", "cov", "cholesky", "histogram")
# 'off': colours as the optimisation leaves them; 'luminance': optimise luminance only, then put
# the content's chrominance back (Gatys et al. 2017, sec. 2.2); 'swap': ordinary transfer, then the
# output's luminance with the content's chrominance (the post-hoc swap of jcjohnson/neural-style).
ORIGINAL_COLORS = ("off", "luminance", "swap")

# NTSC RGB -> YIQ (rows Y, I, Q); Y is the Rec. 601 luma.
RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                       [0.595716, -0.274453, -0.321263],
                       [0.211456, -0.522591, 0.311135]], dtype=np.float64)
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)
_EPS = 1e-5  # regularises covariance roots of flat (e.g. grey) images


def rgb_to_yiq(image):
    return (np.asarray(image, np.float64) @ RGB_TO_YIQ.T).astype(np.float32)


def yiq_to_rgb(image):
    """Inverse of rgb_to_yiq (not clipped: a YIQ triple may lie outside the RGB cube)."""
    return (np.asarray(image, np.float64) @ YIQ_TO_RGB.T).astype(np.float32)


def luminance(image):
    """Rec. 601 luma Y of an RGB image: [H, W]."""
    return rgb_to_yiq(image)[..., 0]


def gray(lum):
    """A [H, W] luminance as a grey RGB image (R = G = B = Y, whose own Y is Y)."""
    return np.repeat(np.asarray(lum, np.float32)[..., None], 3, axis=-1)


def combine_luminance(luma_from, colors_from):
    """Y of `luma_from` with I and Q of `colors_from` (same shape), clipped to [0, 1]."""
    yiq = rgb_to_yiq(colors_from)
    yiq[..., 0] = luminance(luma_from)
    return np.clip(yiq_to_rgb(yiq), 0.0, 1.0)


def match_luminance(lum, reference):
    """Affine map of luminance `lum` to the mean and standard deviation of `reference` (Gatys 2017 eq. 2)."""
    lum = np.asarray(lum, np.float64)
    ref = np.asarray(reference, np.float64)
    return ((lum - lum.mean()) * (ref.std() / max(lum.std(), _EPS)) + ref.mean()).astype(np.float32)


def _sym_sqrt(cov, inverse=False):
    values, vectors = np.linalg.eigh(cov)
    values = np.maximum(values, 0.0) + _EPS
    return (vectors * (values ** (-0.5 if inverse else 0.5))) @ vectors.T


def match_colors(image, reference, method):
    """Recolour `image` so that its colour statistics match those of `reference`.

    method:
        'meanvar': per-channel mean and standard deviation.
        'cov': mean and 3x3 covariance, x' = S_r^1/2 S_i^-1/2 (x - mu_i) + mu_r (the symmetric
            square root, the "image analogies" variant of Gatys 2017 sec. 2.1).
        'cholesky': the same with Cholesky factors, x' = L_r L_i^-1 (x - mu_i) + mu_r.
        'histogram': each channel's full histogram, by exact quantile (rank) mapping.
        'none': unchanged.
    The result is clipped to [0, 1], which can move the statistics slightly when the reference's
    colours do not fit the image's shape in RGB.
    """
    if method not in COLOR_MATCHES:
        raise UserError(f"unknown color_match '{method}'; accepted: {', '.join(COLOR_MATCHES)}")
    image = np.asarray(image, np.float32)
    if method == "none":
        return image.copy()
    x = image.reshape(-1, 3).astype(np.float64)
    r = np.asarray(reference, np.float64).reshape(-1, 3)
    if method == "histogram":
        out = np.empty_like(x)
        for c in range(3):
            order = np.argsort(x[:, c], kind="stable")
            quantiles = (np.arange(x.shape[0]) + 0.5) / x.shape[0]
            ref_sorted = np.sort(r[:, c])
            ref_q = (np.arange(r.shape[0]) + 0.5) / r.shape[0]
            out[order, c] = np.interp(quantiles, ref_q, ref_sorted)
    else:
        mu_x, mu_r = x.mean(0), r.mean(0)
        if method == "meanvar":
            out = (x - mu_x) * (r.std(0) / np.maximum(x.std(0), _EPS)) + mu_r
        else:
            cov_x = np.cov(x, rowvar=False, bias=True)
            cov_r = np.cov(r, rowvar=False, bias=True)
            if method == "cov":
                a = _sym_sqrt(cov_r) @ _sym_sqrt(cov_x, inverse=True)
            else:
                eye = _EPS * np.eye(3)
                a = np.linalg.cholesky(cov_r + eye) @ np.linalg.inv(np.linalg.cholesky(cov_x + eye))
            out = (x - mu_x) @ a.T + mu_r
    return np.clip(out, 0.0, 1.0).reshape(image.shape).astype(np.float32)


def prepare(content, styles, config, color_source=None):
    """Apply the colour options before optimisation.

    Args:
        content, styles: the content image and the list of style images.
        config: a GatysConfig (uses color_match and original_colors).
        color_source: an image whose colours the styles take instead of the content's (or None).

    Returns:
        (content, styles) to optimise with, and finish(image) -> image, which restores the
        content's colours on the result when original_colors asks for it. With 'luminance' all
        images are grey (R = G = B = Y); an init image should be made grey as well.
    """
    reference = content if color_source is None else color_source
    styles = [match_colors(s, reference, config.color_match) for s in styles]
    mode = config.original_colors
    if mode == "off":
        return content, styles, lambda image: image

    def finish(image):
        from .image import resize_to

        return combine_luminance(image, resize_to(content, image.shape[:2]))

    if mode == "luminance":
        content_lum = luminance(content)
        styles = [gray(np.clip(match_luminance(luminance(s), content_lum), 0.0, 1.0)) for s in styles]
        return gray(content_lum), styles, finish
    return content, styles, finish
