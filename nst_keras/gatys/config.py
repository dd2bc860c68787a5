"""Options of Gatys mode: the one home of their defaults (the CLI builds its flags from here)."""
import dataclasses
import math
from dataclasses import dataclass

from ..errors import UserError, check_choice
from ..models import PRECISIONS

OPTIMIZERS = ("lbfgs", "adam", "sgd")
INITS = ("content", "noise", "style")  # or a path to an image file
STYLE_FITS = ("resize", "scale", "crop")
DEFAULT_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")


@dataclass(frozen=True)
class GatysConfig:
    """Everything that determines a Gatys-mode result.

    Attributes (CLI flag in brackets):
        size: long side of the output in pixels [--size].
        max_size: the largest long side accepted [--max-size].
        model, weights: feature network and weight source [--model, --weights].
        pooling: 'max' (VGG's own) or 'avg': every max pool replaced by an average pool, which
            Gatys et al. (2016) found gives slightly smoother results [--pooling].
        content_layers, content_weight: content loss layers and alpha [--content-layers, --content-weight].
        style_layers, style_layer_weights: style loss layers and their relative weights
            (None: equal; normalised to sum to 1) [--style-layers, --style-layer-weights].
        style_weight: beta [--style-weight]. tv_weight, tv_form: gamma and the TV form [--tv-weight, --tv-form].
        style_blend_weights: relative weights of several style images (None: equal) [--style-blend-weights].
        style_fit: how a style image is sized: 'resize' to the content size, 'scale' keeps its
            aspect with long side style_scale x the content's, 'crop' a centred window [--style-fit, --style-scale].
        style_size: long side in px of every style image at the output size, whatever the
            content's size (None: use style_fit); coarser scales shrink it with the output [--style-size].
        style_scales: one size multiplier per style image, applied on top of style_fit /
            style_size (None: all 1) [--style-scales].
        style_masks: one mask image path per style image, white where that style applies; the
            style losses are restricted to each region (gatys/regions.py) [--style-masks].
        init: 'content', 'noise', 'style' or an image path [--init].
        optimizer, iterations, learning_rate: the optimiser, its iterations at the final scale and
            step size (None: the optimiser's default) [--optimizer, --iterations, --learning-rate].
        coarse_size, coarse_iterations: coarse-to-fine: the scales are size, size/2, size/4, ...
            down to the smallest that is at least coarse_size (so below 2 x coarse_size the run is
            single-scale), with coarse_iterations at each coarser scale; 0 disables
            [--coarse-size, --coarse-iterations]. 256 and 30 were chosen from time-to-loss
            measurements (BENCHMARKS.md, gatys-coarse-to-fine): from a content init, starting at
            128 px or running 100 coarse iterations cost more time than it saved at 256 and 512 px.
        seed: seeds noise init and random weights [--seed].
        tile_size, tile_overlap, tile_iterations: tiled rendering (gatys/tiles.py) when size > tile_size:
            a pass at long side tile_size, then tile_iterations on each tile_size-px tile at full
            resolution, neighbours sharing at least tile_overlap px; 0 disables
            [--tile-size, --tile-overlap, --tile-iterations].
        color_match: recolour the style images to the content's (or color_source's) colour
            statistics first: none, meanvar, cov, cholesky or histogram [--color-match].
        color_source: an image path whose colours the style images take instead (None: the content)
            [--color-source].
        original_colors: keep the content's colours: 'off', 'luminance' (optimise luminance only)
            or 'swap' (post-hoc luminance swap) [--original-colors [MODE]].
        precision: 'float32', 'bfloat16' (the convolutions in bfloat16; image, Grams, losses and
            L-BFGS-B in float32) or 'auto': bfloat16 where the hardware runs it natively (CPU flag
            amx_bf16, GPU compute capability >= 8.0), float32 elsewhere [--precision].
    """

    size: int = 512
    # The largest square side whose predicted peak (nst_keras.memory: 18.9 GiB at 2560 px) fits a 24 GB machine.
    max_size: int = 2560
    model: str = "vgg19"
    weights: str = "auto"
    pooling: str = "max"
    precision: str = "auto"
    content_layers: tuple = ("block4_conv2",)
    content_weight: float = 1.0
    style_layers: tuple = DEFAULT_STYLE_LAYERS
    style_layer_weights: tuple = None
    style_weight: float = 1e-3
    style_blend_weights: tuple = None
    tv_weight: float = 1e3
    tv_form: str = "power"
    style_fit: str = "scale"
    style_scale: float = 1.0
    style_size: int = None
    style_scales: tuple = None
    style_masks: tuple = None
    init: str = "content"
    optimizer: str = "lbfgs"
    # Final-scale iterations (BENCHMARKS.md, gatys-coarse-to-fine and gatys-readme): at 512 px the
    # loss falls little after 100 iterations, so the README command takes under 3 min on 2 CPU cores.
    iterations: int = 100
    learning_rate: float = None
    coarse_size: int = 256
    coarse_iterations: int = 30
    seed: int = 0
    tile_size: int = 0
    tile_overlap: int = 64
    tile_iterations: int = 50
    color_match: str = "none"
    color_source: str = None
    original_colors: str = "off"

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        return dataclasses.asdict(self)

    def validate(self):
        """Raise UserError naming the first bad value and what is accepted."""
        for name in ("content_weight", "style_weight", "tv_weight", "style_scale"):
            _check_weight(name, getattr(self, name))
        if self.content_weight == self.style_weight == self.tv_weight == 0:
            raise UserError("content_weight, style_weight and tv_weight are all 0: there is nothing to optimise; "
                            "accepted: at least one positive weight")
        if self.style_scales is not None:
            for v in self.style_scales:
                _check_weight("style_scales", v)
                if v == 0:
                    raise UserError(f"style_scales {list(self.style_scales)} contain 0; accepted: positive numbers")
        if self.style_size is not None and (not isinstance(self.style_size, int) or
                                            not 1 <= self.style_size <= self.max_size):
            raise UserError(f"style_size {self.style_size!r}; accepted: a whole number from 1 to max_size "
                            f"{self.max_size}")
        for name in ("style_layer_weights", "style_blend_weights"):
            values = getattr(self, name)
            if values is not None:
                for v in values:
                    _check_weight(name, v)
                if sum(values) <= 0:
                    raise UserError(f"{name} {list(values)} sum to 0; accepted: non-negative numbers, not all 0")
        if self.style_layer_weights is not None and len(self.style_layer_weights) != len(self.style_layers):
            raise UserError(f"{len(self.style_layer_weights)} style layer weights for {len(self.style_layers)} "
                            "style layers; accepted: one weight per style layer")
        if self.style_scale == 0:
            raise UserError("style_scale 0; accepted: a positive number")
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("pooling", self.pooling, ("max", "avg"))
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("style_fit", self.style_fit, STYLE_FITS)
        from ..color import COLOR_MATCHES, ORIGINAL_COLORS
        from ..functional import TV_FORMS

        check_choice("color_match", self.color_match, COLOR_MATCHES)
        check_choice("original_colors", self.original_colors, ORIGINAL_COLORS)
        if self.color_source is not None and self.color_match == "none":
            raise UserError(f"color_source '{self.color_source}' needs a colour match; accepted: "
                            f"--color-match {', '.join(COLOR_MATCHES[1:])}")
        check_choice("tv_form", self.tv_form, TV_FORMS)
        for name in ("size", "max_size", "iterations"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise UserError(f"{name} {getattr(self, name)!r}; accepted: a positive whole number")
        for name in ("coarse_size", "coarse_iterations", "seed"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise UserError(f"{name} {getattr(self, name)!r}; accepted: a whole number >= 0")
        for name in ("tile_size", "tile_overlap", "tile_iterations"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise UserError(f"{name} {getattr(self, name)!r}; accepted: a whole number >= 0")
        if self.tile_size and not 0 < 2 * self.tile_overlap <= self.tile_size:
            raise UserError(f"tile_overlap {self.tile_overlap} for tile_size {self.tile_size}; accepted: "
                            "an overlap from 1 px to half the tile size")
        if self.tile_size and self.style_masks and self.size > self.tile_size:
            raise UserError("style_masks cannot be combined with tiles yet; accepted: --tile-size 0 or no --style-masks")
        if self.size > self.max_size:
            raise UserError(f"size {self.size} exceeds max_size {self.max_size}; accepted: a size up to "
                            f"{self.max_size}, or raise --max-size")
        if self.learning_rate is not None:
            _check_weight("learning_rate", self.learning_rate)
            if self.learning_rate == 0:
                raise UserError("learning_rate 0; accepted: a positive number")
        return self


def _check_weight(name, value):
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise UserError(f"{name} {value!r} is not allowed; accepted: a finite number >= 0")


__all__ = ["GatysConfig", "OPTIMIZERS", "INITS", "STYLE_FITS", "DEFAULT_STYLE_LAYERS"]
