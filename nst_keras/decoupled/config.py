"""The one home of decoupled mode's defaults: DecoupledConfig and the method constants.

Everything that determines a decoupled-mode result is a field of DecoupledConfig; the CLI's flags
are generated from it. METHODS, SEGMENTS (path segments per layer and method), LAYERS,
END_SPLITS and WAKE_REFRESH_ERROR are the constants the stages read.
"""
import dataclasses
import math
from dataclasses import dataclass

from ..errors import UserError

LAYERS = tuple(f"block{k}_conv1" for k in range(1, 6))
# The long side a run without a size starts from; raised when the size rule (sizes.py) refuses it
# for the content's aspect ratio.
DEFAULT_SIZE = 128
METHODS = ("projected", "reversible", "penalty")
# Path segments per layer (block1..5) by method; the reversible scheme needs short segments.
SEGMENTS = {"projected": (4, 2, 2, 1, 1), "reversible": (32, 16, 8, 1, 1), "penalty": (4, 2, 2, 1, 1)}
# Reversible method: the normalising path's first and last segments, where the image moves
# fastest, are each cut into this many (the imposition's grid mirrors it, so that every segment has
# its partner).
END_SPLITS = 4
# Relative error (60 dB) above which waking the channels still zero at the end of a projected
# stage may cost one fresh Jacobian.
WAKE_REFRESH_ERROR = 1e-3


@dataclass(frozen=True)
class DecoupledConfig:
    """Everything that determines a decoupled-mode result.

    Attributes (CLI flag in brackets):
        size: long side of the working image in pixels [--size]; None: DEFAULT_SIZE (128), raised to
            the smallest size the size rule (sizes.py) accepts for the content's aspect ratio when
            128 is refused (160 for 4:3 and 3:4, 176 for 16:9); the result's metadata records the size
            used. max_size: largest accepted [--max-size].
        model, weights: feature network and weight source [--model, --weights].
        layers: the layers set one after the other, shallow to deep (default block1..5_conv1).
        method: 'projected' (min-norm continuation), 'reversible' (the same, made exactly invertible:
            smoothed Jacobians, implicit normalising segments) or 'penalty' (the thesis's SGD on
            summed losses) [--method].
        noise_draws: U(0, 1) noise images averaged for the reference [--noise-draws].
        segments: path segments per layer (one Jacobian each, plus one to start) [--segments];
            None: SEGMENTS[method], as many as there are layers.
        tolerance: the corrector stops when every constrained layer's relative error is below it.
        max_corrections: chord corrector iterations (forward passes) per segment.
        max_refreshes: fresh Jacobians a segment may take when its chord iterations stall.
        fixed_point_iterations, fixed_point_tolerance: 'reversible' only: Jacobian updates of an
            implicit (normalising) segment, and the relative image change at which they stop.
        smoothing: 'reversible' only: the Jacobians (not the features) are those of the network
            with ReLU and max pooling softened at this fraction of each layer's spread on noise.
        straight_through: 'reversible' only (default True): take the softened derivatives at the exact
            network's activations instead of at the smooth ops' own values (the offsets of softplus and
            logsumexp add up with depth; docs/decoupled/NUMERICS.md says what each gives).
        reversible_tolerance: 'reversible' only: the corrector tolerance (at most `tolerance`); the
            way back amplifies what a segment leaves. The method computes the features in float64.
        reversible_layers: 'reversible' only: the first this many layers use the reversible scheme;
            deeper ones (block4-5, whose rows are too nearly dependent for it) the projected one,
            with exact Jacobians [--reversible-layers].
        dead_tolerance: a channel whose reference (or start/target) mean is below this fraction of
            its layer's largest mean is dead and left unconstrained.
        penalty_steps, penalty_learning_rate: SGD steps per layer and learning rate of 'penalty'
            [--penalty-steps, --penalty-learning-rate] (thesis: 5e-4, up to 50,000 steps).
        seed: seeds the noise draws and random weights [--seed].
        allow_imprecise: run a working shape with too few deep positions per live channel for the
            60 dB precision (sizes.py) with a one-line warning, instead of refusing it
            [--allow-imprecise].
        polish: after the imposition, set every layer's means together on the image as it will be
            saved, pixels kept in [0, 1] (polish.py) [--polish]; polish_jacobians: at most this many
            Jacobians for it.
    """

    size: int = None
    max_size: int = 1024
    model: str = "vgg16"
    weights: str = "auto"
    layers: tuple = LAYERS
    method: str = "projected"
    noise_draws: int = 8
    segments: tuple = None
    tolerance: float = 1e-4
    max_corrections: int = 40
    max_refreshes: int = 4
    fixed_point_iterations: int = 20
    fixed_point_tolerance: float = 1e-7
    smoothing: float = 0.2
    straight_through: bool = True
    reversible_tolerance: float = 1e-9
    reversible_layers: int = 3
    dead_tolerance: float = 1e-4
    penalty_steps: int = 200
    penalty_learning_rate: float = 5e-4
    seed: int = 0
    allow_imprecise: bool = False
    polish: bool = True
    polish_jacobians: int = 6

    @property
    def path_segments(self):
        """Segments per layer: `segments`, or the method's default for as many layers."""
        if self.segments is not None:
            return tuple(self.segments)
        default = SEGMENTS.get(self.method, SEGMENTS["projected"])
        return tuple(default[min(i, len(default) - 1)] for i in range(len(self.layers)))

    @property
    def reversible(self):
        return self.method == "reversible"

    def at_layer(self, k):
        """The config a stage of layer index k runs with: a reversible run's deep layers (index
        >= reversible_layers) use the projected scheme."""
        return self.replace(method="projected") if self.reversible and k >= self.reversible_layers else self

    @property
    def corrector_tolerance(self):
        """Relative feature error at which a segment's corrections stop (tighter when reversible:
        the way back amplifies what is left)."""
        return min(self.tolerance, self.reversible_tolerance) if self.reversible else self.tolerance

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["segments"] = list(self.path_segments)  # as used (None stands for the method's default)
        return out

    def validate(self):
        """Raise UserError naming the first bad value and what is accepted."""
        if self.method not in METHODS:
            import difflib

            hint = difflib.get_close_matches(str(self.method), METHODS, n=1)
            raise UserError(f"unknown method '{self.method}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                            + f"; accepted: {', '.join(METHODS)}")
        for name in ("size", "max_size", "noise_draws", "max_corrections", "penalty_steps", "reversible_layers",
                     "polish_jacobians"):
            value = getattr(self, name)
            if name == "size" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"{name} {value!r}; accepted: a positive whole number"
                                + (" (or None: chosen by the size rule)" if name == "size" else ""))
        from ..models import min_image_side

        if self.size is not None and self.size < min_image_side(self.layers):
            raise UserError(f"size {self.size} is too small for {self.layers[-1]}; accepted: at least "
                            f"{min_image_side(self.layers)} pixels")
        if self.size is not None and self.size > self.max_size:
            raise UserError(f"size {self.size} exceeds max_size {self.max_size}; accepted: a size up to "
                            f"{self.max_size}, or raise --max-size")
        if len(self.path_segments) != len(self.layers) or any(int(n) < 1 for n in self.path_segments):
            raise UserError(f"segments {list(self.path_segments)}; accepted: one positive whole number per layer "
                            f"({len(self.layers)} layers)")
        for name in ("tolerance", "dead_tolerance", "penalty_learning_rate", "fixed_point_tolerance", "smoothing",
                     "reversible_tolerance"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise UserError(f"{name} {value!r}; accepted: a finite number > 0")
        for name in ("straight_through", "allow_imprecise", "polish"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"{name} {getattr(self, name)!r}; accepted: True or False")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise UserError(f"seed {self.seed!r}; accepted: a whole number >= 0")
        return self
