"""Decoupled mode: normalise and impose global VGG features one layer at a time.

Method: Martinez-Enriquez, Gonzalez & Portilla (2022), "Deterministic decoupling of global
features". Features f_k(x) are the spatial channel means of block{k}_conv1 (after ReLU) of an
image x in [0, 1]. Normalising layer k moves x until f_k(x) equals the reference r_k (the
expected features of U(0, 1) noise) while f_j, j < k, stay where they are; imposing does the
same towards recorded style values c_k, from layer 5 down to layer 1.

Numerics (departures from the paper and from the thesis it builds on are marked "Departure"):
each stage follows the straight feature path f_k(s) = (1 - s) f_k(start) + s target, s in
[0, 1], cut into a fixed number of segments (few for the deep, costly layers). Departure: the
thesis descended a penalty with SGD; here each segment takes one explicit stacked Jacobian
J = [J_<k; J_k] (rows: gradients of the channel means, vectorised reverse mode through the
network truncated at each layer) at its start and solves x_b = x_a + J^T mu, f(x_b) = goal
for mu: the first iterate is the min-norm step J^+ (goal - f), whose predictor part J^+ [0; d]
is orthogonal to the earlier layers' gradients; later iterates use secant (Broyden) updates of
the inverse, learnt from the forward passes, so they stay in the row space of J. Steps are
damped (halved until the error drops); when the iterations stop contracting, the segment goes
on with a fresh Jacobian at the current point (damped Gauss-Newton). Channels dead on the
reference and numerically dependent rows are left out of the constraints and reported. A
channel that is zero everywhere has no gradient; if its target is small it is first lifted awake
(its largest pre-activation raised by a min-norm step), otherwise its row is dropped until the
other channels' moves wake it; those that stay zero are reported.

Method 'reversible' makes impose(normalize(x)) return x: its Jacobians are those of the network
with the derivatives of ReLU and max pool softened (a sigmoid, a softmax) at the exact network's
values (straight through; optionally the values softened too), normalising segments are implicit
(J at the segment's end, found by Anderson-accelerated fixed-point iteration) and imposing
segments explicit (J at their start), so each imposing segment solves the very equation its
normalising segment solved (a stalled corrector renews its model, never its basis; the
normalising path's first and last segments, where the image moves fastest, are cut into
END_SPLITS, and the imposing path mirrors that grid). The features are computed in float64 and
the corrector's model starts from the exact network's rows, so that both directions reach the
same root to ~1e-9.
Channels dead at either end of a stage, and earlier layers' channels dead at its start, are left
out in both directions (a softened row along which the exact features do not move is a flat
direction: a second root). With the exact ReLU Jacobian the fixed point does not converge (it
jumps as activations flip); docs/decoupled/NUMERICS.md has the measurements. Block4-5's rows are
too nearly dependent for the scheme (every step rejected at 64x64), so a reversible run's layers
after the first `reversible_layers` take the projected scheme, with exact Jacobians; the round
trip then comes back only as well as they do."""
import dataclasses
import functools
import math
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from . import __version__
from .errors import UserError
from .projection import MinNormSolver

LAYERS = tuple(f"block{k}_conv1" for k in range(1, 6))
METHODS = ("projected", "reversible", "penalty")
# Path segments per layer (block1..5) by method; the reversible scheme needs short segments.
SEGMENTS = {"projected": (4, 2, 2, 1, 1), "reversible": (32, 16, 8, 1, 1), "penalty": (4, 2, 2, 1, 1)}
STAGES = ("style", "content", "impose")
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
        size: long side of the working image in pixels [--size]; max_size: largest accepted [--max-size].
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
    """

    size: int = 128
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
        for name in ("size", "max_size", "noise_draws", "max_corrections", "penalty_steps", "reversible_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"{name} {value!r}; accepted: a positive whole number")
        from .models import min_image_side

        if self.size < min_image_side(self.layers):
            raise UserError(f"size {self.size} is too small for {self.layers[-1]}; accepted: at least "
                            f"{min_image_side(self.layers)} pixels")
        if self.size > self.max_size:
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
        if not isinstance(self.straight_through, bool):
            raise UserError(f"straight_through {self.straight_through!r}; accepted: True or False")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise UserError(f"seed {self.seed!r}; accepted: a whole number >= 0")
        return self


@dataclass
class Progress:
    """One corrector iteration (projected) or SGD step (penalty), handed to the callback."""

    stage: str              # 'style', 'content' or 'impose' (or 'normalize' / 'impose' in the parts)
    layer: str
    stage_index: int        # over the whole run, from 0
    num_stages: int
    segment: int            # path segment (projected) or step (penalty)
    snr_db: float           # SNR of the layer being set against its final target
    min_earlier_snr_db: float
    passes: dict            # {'forward': n, 'reverse': n} so far in this stage
    elapsed: float          # seconds since the start of the stage
    report: dict = None     # the stage's report, on the last call of a stage only
    image: np.ndarray = None  # the image at the end of the stage, float64 [H, W, 3] (last call only)


@dataclass
class Reference:
    """Expected features of U(0, 1) noise at one image size."""

    mean: dict              # layer -> float64 [C]
    std: dict               # layer -> float64 [C], spread over the draws
    dead: dict              # layer -> int array of channels dead on noise
    shape: tuple
    draws: int

    def summary(self):
        out = {}
        for name, mean in self.mean.items():
            live = np.setdiff1d(np.arange(mean.size), self.dead[name])
            rel = self.std[name][live] / mean[live] if live.size else np.zeros(0)
            out[name] = {"channels": int(mean.size), "dead_channels": self.dead[name].tolist(),
                         "mean_of_means": float(mean.mean()),
                         "relative_spread_median": float(np.median(rel)) if rel.size else None,
                         "relative_spread_max": float(rel.max()) if rel.size else None}
        return out


@dataclass
class DecoupledResult:
    image: np.ndarray               # float32 [H, W, 3], clipped to [0, 1]
    normalized_style: np.ndarray
    normalized_content: np.ndarray
    style_features: dict            # layer -> recorded c_k
    reference: Reference
    stages: list                    # one report dict per stage
    metadata: dict
    history: list = field(default_factory=list)  # convergence samples, one dict per iteration

    def report(self):
        return {"metadata": self.metadata, "reference": self.reference.summary(), "stages": self.stages,
                "totals": totals(self.stages)}


def snr_db(values, target):
    """10 log10(|target|^2 / |values - target|^2); inf when equal."""
    values, target = np.asarray(values, np.float64), np.asarray(target, np.float64)
    err = float(np.sum((values - target) ** 2))
    sig = float(np.sum(target ** 2))
    if err == 0:
        return math.inf
    if sig == 0 or not math.isfinite(err) or sig / err == 0:
        return -math.inf
    return 10 * math.log10(sig / err)


def totals(stages):
    return {"wall_time_s": float(sum(s["wall_time_s"] for s in stages)),
            "forward_passes": int(sum(s["passes"]["forward"] for s in stages)),
            "reverse_passes": int(sum(s["passes"]["reverse"] for s in stages)),
            "min_set_snr_db": float(min(s["set_snr_db"] for s in stages)) if stages else None,
            "min_earlier_snr_db": min((s["min_earlier_snr_db"] for s in stages
                                       if s["min_earlier_snr_db"] is not None), default=None),
            "max_abs_cos": max((s["max_abs_cos"] for s in stages if s["max_abs_cos"] is not None), default=None)}


class FeatureMeans:
    """Compiled channel-mean features, their Jacobians and SGD steps for one image shape.

    Args:
        extractor: a nst_keras.models.FeatureExtractor whose layers include `layers`.
        shape: (h, w) of the images; all compiled functions have this fixed shape.
        layers: the feature layers, shallow to deep.
        chunk: Jacobian rows computed per vectorised reverse-mode call (None: by image size).
        smoothing, straight_through: see DecoupledConfig (the Jacobians of a softened network).
        float64: compute the features (not the Jacobians) in float64, so that a corrector can
            drive them far below float32 round-off (the reversible method).
    """

    def __init__(self, extractor, shape, layers=LAYERS, chunk=None, smoothing=0.0, seed=0, straight_through=False,
                 float64=False):
        import keras
        import tensorflow as tf

        from .models import preprocess

        self.layers = tuple(layers)
        self.shape = tuple(shape)
        h, w = self.shape
        base = extractor.model
        outs = [base.get_layer(n).output for n in self.layers]
        self.channels = [int(o.shape[-1]) for o in outs]
        self.offsets = np.concatenate([[0], np.cumsum(self.channels)]).astype(int)
        if chunk is None:
            chunk = int(max(8, min(64, 64 * 128 * 128 // (h * w))))
        self.chunk = chunk
        spec = tf.TensorSpec([1, h, w, 3], tf.float32)
        self.passes = {"forward": 0, "reverse": 0}
        self._base, self.smoothing, self._tau, self._top = base, float(smoothing), {}, {}
        self._positions = {}
        self.straight_through = bool(straight_through)
        self.float64 = bool(float64)
        if float64:  # the convolutions' (kernel, bias) in float64 and the pools (None), in order
            ops = [op for op in base.layers if isinstance(op, (keras.layers.Conv2D, keras.layers.MaxPooling2D))]
            self._names64 = [op.name for op in ops]
            self._params64 = [tuple(tf.constant(np.asarray(w), tf.float64) for w in (op.kernel, op.bias))
                              if isinstance(op, keras.layers.Conv2D) else None for op in ops]
        if smoothing:
            self._set_scales(np.random.default_rng(seed).random((1, h, w, 3)).astype(np.float32))
        self._means, self._jac, self._jac_exact, self._sgd = [], [], [], []
        for k in range(len(self.layers)):
            upto = keras.Model(base.input, outs[:k + 1])
            single = keras.Model(base.input, outs[k])

            def means(x, model=upto, n=k + 1):
                ys = model(preprocess(x))
                ys = ys if n > 1 else [ys]
                return tf.concat([tf.reduce_mean(y, axis=[1, 2])[0] for y in ys], axis=0)

            def jac(x, idx, model=single, name=self.layers[k], smooth=bool(smoothing)):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    out = self._smooth_forward(x, name) if smooth else model(preprocess(x))
                    y = tf.gather(tf.reduce_mean(out, axis=[1, 2])[0], idx)
                return tf.reshape(tape.jacobian(y, x), [tf.shape(idx)[0], -1])

            def sgd(x, target, weight, rate, fn=means):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    f = fn(x)
                    loss = tf.reduce_sum(weight * tf.square(f - target))
                grad = tape.gradient(loss, x)
                return x - rate * grad, f, grad

            m = int(self.offsets[k + 1])
            vec = tf.TensorSpec([m], tf.float32)
            if float64:
                means = functools.partial(self._means64, names=self.layers[:k + 1])
            self._means.append(tf.function(means, input_signature=[tf.TensorSpec([1, h, w, 3], tf.float64)]
                                           if float64 else [spec]))
            idx_spec = tf.TensorSpec([chunk], tf.int32)
            self._jac.append(tf.function(jac, input_signature=[spec, idx_spec]))
            self._jac_exact.append(tf.function(functools.partial(jac, smooth=False), input_signature=[spec, idx_spec])
                                   if smoothing else self._jac[-1])
            self._sgd.append(tf.function(sgd, input_signature=[spec, vec, vec, tf.TensorSpec([], tf.float32)]))

    def _smooth_forward(self, x, upto, scales=None, pre_activation=False):
        """Layer `upto` of the network with every ReLU softened to tau softplus(z / tau) and every
        2x2 max pool to tau logsumexp(z / tau), tau per layer (their offsets add up with depth).
        With straight_through only the derivatives are softened (a sigmoid, a softmax): the
        values stay the exact network's, so the soft derivatives are taken where it is. With
        scales={} it runs the exact network and fills `scales` with each layer's pre-activation
        (conv) or input (pool) spread. With pre_activation=True it runs the exact network and
        returns `upto`'s convolution output before its ReLU."""
        import keras
        import tensorflow as tf

        from .models import preprocess

        exact = scales is not None or pre_activation
        y = preprocess(x)
        for layer in self._base.layers:
            if isinstance(layer, keras.layers.Conv2D):
                z = tf.nn.conv2d(y, layer.kernel, 1, "SAME") + layer.bias
                if pre_activation and layer.name == upto:
                    return z
                if exact:
                    if scales is not None:
                        scales[layer.name] = float(tf.math.reduce_std(z))
                    y = tf.nn.relu(z)
                else:
                    tau = self._tau[layer.name]
                    y = self._soft(tau * tf.nn.softplus(z / tau), tf.nn.relu(z))
                if layer.name == upto:
                    return y
            elif isinstance(layer, keras.layers.MaxPooling2D):
                if exact:
                    if scales is not None:
                        scales[layer.name] = float(tf.math.reduce_std(y))
                    y = tf.nn.max_pool2d(y, 2, 2, "VALID")
                else:
                    tau = self._tau[layer.name]
                    _, h, w, c = y.shape
                    soft = tau * tf.reduce_logsumexp(tf.reshape(y, [1, h // 2, 2, w // 2, 2, c]) / tau, axis=[2, 4])
                    y = self._soft(soft, tf.nn.max_pool2d(y, 2, 2, "VALID"))
        raise ValueError(f"layer {upto} not found")

    def _means64(self, x, names):
        """Channel means of the layers `names` of the exact network, computed in float64."""
        import tensorflow as tf

        from .models import IMAGENET_MEAN_BGR

        y = tf.reverse(x * 255.0, axis=[-1]) - tf.constant(IMAGENET_MEAN_BGR.astype(np.float64))
        out = []
        for name, params in zip(self._names64, self._params64):
            if params is not None:
                y = tf.nn.relu(tf.nn.conv2d(y, params[0], 1, "SAME") + params[1])
                if name in names:
                    out.append(tf.reduce_mean(y, axis=[1, 2])[0])
                    if len(out) == len(names):
                        return tf.concat(out, axis=0)
            else:
                y = tf.nn.max_pool2d(y, 2, 2, "VALID")
        raise ValueError(f"layers {names} not found")

    def _soft(self, soft, exact):
        """The smoothed op; with straight_through, the exact value with the smoothed op's gradient."""
        import tensorflow as tf

        return soft + tf.stop_gradient(exact - soft) if self.straight_through else soft

    def _set_scales(self, noise):
        """tau = smoothing x the spread of each layer's pre-activations (inputs, for pools) on noise."""
        import tensorflow as tf

        scales = {}
        self._smooth_forward(tf.constant(noise), self.layers[-1], scales)
        self._tau = {name: self.smoothing * max(v, 1e-6) for name, v in scales.items()}

    @property
    def size(self):
        return self.shape[0] * self.shape[1] * 3

    def _tensor(self, x, dtype=np.float32):
        import tensorflow as tf

        return tf.convert_to_tensor(np.asarray(x, dtype).reshape(1, *self.shape, 3))

    def means(self, x, k=None):
        """Concatenated channel means of layers 0..k (default: all), float64 (computed in float64
        if the net was built with float64=True)."""
        k = len(self.layers) - 1 if k is None else k
        self.passes["forward"] += 1
        if self.float64:
            return self._means[k](self._tensor(x, np.float64)).numpy()
        return self._means[k](self._tensor(x)).numpy().astype(np.float64)

    def split(self, values):
        """Concatenated means -> {layer: means} (for as many layers as the values cover)."""
        return {n: values[self.offsets[i]:self.offsets[i + 1]] for i, n in enumerate(self.layers)
                if self.offsets[i + 1] <= values.size}

    def jacobian(self, x, k, channels, exact=False):
        """Rows d mean_c / d x for the given channels of layer k: float32 [len(channels), H*W*3]
        (of the smoothed network if the net has smoothing, unless exact=True)."""
        channels = np.asarray(channels, dtype=np.int32)
        if channels.size == 0:
            return np.zeros((0, self.size), np.float32)
        fn = self._jac_exact[k] if exact else self._jac[k]
        return np.concatenate([rows.numpy() for rows in self._in_chunks(fn, x, channels)])[:channels.size]

    def _in_chunks(self, fn, x, channels):
        """fn(x, idx) on the channels in compiled chunks of `chunk` (the last padded by repeats)."""
        import tensorflow as tf

        xt = self._tensor(x)
        pad = (-channels.size) % self.chunk
        idx = np.concatenate([channels, np.repeat(channels[-1:], pad)])
        self.passes["reverse"] += int(idx.size)
        return [fn(xt, tf.constant(idx[i:i + self.chunk])) for i in range(0, idx.size, self.chunk)]

    def top_preactivation(self, x, k, channels):
        """For channels of layer k: the largest pre-activation (convolution output before the
        ReLU) over positions, and its gradient rows (exact network), float64 / float32
        [len(channels), H*W*3]. A channel that is zero everywhere has no mean gradient; this
        one says which way wakes it up. Also returns the layer's number of positions and its
        largest pre-activation over all channels."""
        import tensorflow as tf

        if k not in self._top:
            name = self.layers[k]

            def top(x, idx):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    z = self._smooth_forward(x, name, pre_activation=True)
                    self._positions[k] = int(z.shape[1] * z.shape[2])  # static: set while tracing
                    peak = tf.reduce_max(tf.gather(tf.reshape(z, [-1, z.shape[-1]]), idx, axis=1), axis=0)
                return peak, tf.reshape(tape.jacobian(peak, x), [tf.shape(idx)[0], -1]), tf.reduce_max(z)

            spec = tf.TensorSpec([1, *self.shape, 3], tf.float32)
            self._top[k] = tf.function(top, input_signature=[spec, tf.TensorSpec([self.chunk], tf.int32)])
        channels = np.asarray(channels, dtype=np.int32)
        if channels.size == 0:
            return np.zeros(0), np.zeros((0, self.size), np.float32), None, None
        out = self._in_chunks(self._top[k], x, channels)
        peaks = np.concatenate([p.numpy() for p, _, _ in out])[:channels.size].astype(np.float64)
        rows = np.concatenate([r.numpy() for _, r, _ in out])[:channels.size]
        return peaks, rows, self._positions[k], float(out[0][2])

    def stacked_jacobian(self, x, features, exact=False):
        """Rows for indices into the stacked feature vector (any layers), in the order given."""
        features = np.asarray(features)
        out = np.empty((features.size, self.size), np.float32)
        for j in range(len(self.layers)):
            pick = np.flatnonzero((features >= self.offsets[j]) & (features < self.offsets[j + 1]))
            if pick.size:
                out[pick] = self.jacobian(x, j, features[pick] - self.offsets[j], exact=exact)
        return out

    def sgd_step(self, x, k, target, weight, rate):
        import tensorflow as tf

        self.passes["forward"] += 1
        self.passes["reverse"] += 1
        new, f, grad = self._sgd[k](self._tensor(x), tf.constant(target, tf.float32),
                                    tf.constant(weight, tf.float32), tf.constant(rate, tf.float32))
        return (new.numpy().reshape(-1).astype(np.float64), f.numpy().astype(np.float64),
                grad.numpy().reshape(-1).astype(np.float64))


def reference_features(net, draws=8, seed=0, dead_tolerance=1e-4):
    """Step 0: mean and spread of the features of `draws` U(0, 1) noise images.

    The method's authors use the expectation over noise; the mean of a few draws estimates it
    (the spread, reported per layer, is small because every feature averages many positions).
    """
    rng = np.random.default_rng(seed)
    samples = np.stack([net.means(rng.random(net.size)) for _ in range(draws)])
    mean, std = samples.mean(axis=0), samples.std(axis=0, ddof=1 if draws > 1 else 0)
    mean_d, std_d = net.split(mean), net.split(std)
    dead = {n: np.flatnonzero(m <= dead_tolerance * max(m.max(), 1e-30)) for n, m in mean_d.items()}
    return Reference(mean=mean_d, std=std_d, dead=dead, shape=net.shape, draws=draws)


class _Stage:
    """Setting one layer's features with the earlier layers held fixed; see the module doc."""

    def __init__(self, net, k, kind, stage_index, num_stages, callback):
        self.net, self.k, self.kind = net, k, kind
        self.stage_index, self.num_stages, self.callback = stage_index, num_stages, callback
        self.layer = net.layers[k]
        self.start_passes = dict(net.passes)
        self.t0 = time.perf_counter()
        self.cpu0 = time.process_time()
        self.history = []

    def passes(self):
        return {key: self.net.passes[key] - self.start_passes[key] for key in self.net.passes}

    def layer_errors(self, f, goal, rows):
        """Relative error per layer over the constrained rows (layers 0..k)."""
        errs = []
        for j in range(self.k + 1):
            sel = rows[(rows >= self.net.offsets[j]) & (rows < self.net.offsets[j + 1])]
            if sel.size == 0:
                errs.append(0.0)
                continue
            num = np.linalg.norm(f[sel] - goal[sel])
            den = max(np.linalg.norm(goal[sel]), 1e-30)
            errs.append(num / den)
        return np.array(errs)

    def report_progress(self, segment, f, final_goal, rows):
        errs = self.layer_errors(f, final_goal, rows)
        set_snr = -20 * math.log10(max(errs[-1], 1e-30))
        earlier = -20 * math.log10(max(errs[:-1].max(), 1e-30)) if self.k else None
        sample = {"stage_index": self.stage_index, "stage": self.kind, "layer": self.layer,
                  "segment": segment, "forward": self.passes()["forward"], "reverse": self.passes()["reverse"],
                  "elapsed": time.perf_counter() - self.t0, "snr_db": set_snr, "min_earlier_snr_db": earlier}
        self.history.append(sample)
        if self.callback is not None:
            self.callback(Progress(stage=self.kind, layer=self.layer, stage_index=self.stage_index,
                                   num_stages=self.num_stages, segment=segment, snr_db=set_snr,
                                   min_earlier_snr_db=earlier if earlier is not None else math.inf,
                                   passes=self.passes(), elapsed=sample["elapsed"]))


class _Broyden:
    """Secant (good Broyden) updates of the corrector's inverse in the coefficients y of the
    row space, x = x_start + U^T y (U: the factorisation's unit rows). It starts as the chord's
    (U U^T)^-1 and learns how the features actually respond, so iterates never leave the row
    space of the Jacobian they started with (what makes the reversible scheme reversible)."""

    def __init__(self, solver):
        self.solver = solver
        self.inverse = solver.inverse_gram()

    def residual(self, f, g):
        return self.solver.scaled_residual((g - f)[self.solver.rows])

    def direction(self, residual):
        return self.inverse @ residual

    def remodel(self, rows_here):
        """Restart from the response measured by the Jacobian rows at the current point (the
        kept feature rows, in the solver's order): the basis U stays, only the model changes."""
        inverse_scale = self.solver.scaled_residual(np.ones(self.solver.num_rows))
        self.inverse = np.linalg.pinv(self.solver.in_row_basis(rows_here) * inverse_scale[:, None], rcond=1e-10)

    def update(self, dy, d_residual):
        h_dr = self.inverse @ (-d_residual)
        denom = float(dy @ h_dr)
        if abs(denom) > 1e-12 * np.linalg.norm(dy) * np.linalg.norm(h_dr):
            self.inverse += np.outer(dy - h_dr, dy @ self.inverse) / denom


def _constrained_rows(net, k, start, target, reference_dead, dead_tolerance, path_ends=False):
    """Rows of the stacked feature vector (layers 0..k) that are constrained in stage k.

    Channels dead on the reference are left out everywhere. A channel of layer k that is dead
    at the start of the path (and so has no gradient there) stays constrained: its Jacobian
    row is dropped while it is zero and used once the channel wakes up. With path_ends=True
    (the reversible scheme) a layer-k channel that is dead at the start or at the target is
    left out instead: waking a channel up from exactly zero (or killing it) has no smooth
    path, and leaving out the same channels in both directions keeps the scheme symmetric.
    So is an earlier layer's channel that is dead at the start (left out at its own stage):
    its smoothed row is not zero, but the exact features do not move along it, and that flat
    direction would let the corrector land on another root on the way back.
    """
    rows = []
    for j in range(k + 1):
        live = np.setdiff1d(np.arange(net.channels[j]), reference_dead[net.layers[j]])
        if path_ends:
            lo, hi = net.offsets[j], net.offsets[j + 1]
            ends = np.minimum(start[lo:hi], target) if j == k else start[lo:hi]
            scale = max(float(np.abs(start[lo:hi]).max()), float(np.abs(target).max()) if j == k else 0.0, 1e-30)
            live = live[ends[live] > dead_tolerance * scale]
        rows.append(net.offsets[j] + live)
    return np.concatenate(rows).astype(int)


def _factorise(net, x, k, rows, dead_tolerance, exact=True):
    """Stacked Jacobian of the constrained rows at x, with rows dead per layer removed (of the
    smoothed network if the net has smoothing and exact=False)."""
    blocks, kept_rows, dead_rows = [], [], []
    for j in range(k + 1):
        lo, hi = net.offsets[j], net.offsets[j + 1]
        sel = rows[(rows >= lo) & (rows < hi)]
        jac = net.jacobian(x, j, sel - lo, exact=exact)
        norms = np.linalg.norm(jac, axis=1)
        ok = norms > 1e-6 * max(norms.max(initial=0.0), 1e-30)
        blocks.append(jac[ok])
        kept_rows.append(sel[ok])
        dead_rows.append(sel[~ok])
    return _solver(np.concatenate(blocks), np.concatenate(kept_rows), np.concatenate(dead_rows))


def _solver(jac, feature_rows, gradient_dead):
    """A MinNormSolver on Jacobian rows (none of them dead) that knows their feature indices."""
    solver = MinNormSolver(jac, dead_tol=0.0)
    solver.rows = np.asarray(feature_rows, int)  # feature index of each Jacobian row
    solver.gradient_dead = np.asarray(gradient_dead, int)
    solver.dependent_rows = solver.rows[solver.dependent]
    return solver


def _project_stage(net, x, k, target, reference, config, stage, implicit):
    """Min-norm continuation along the straight feature path (methods projected and reversible).

    Each segment s_a -> s_b solves x_b = x_a + J^T mu, f(x_b) = path(s_b) (every iterate stays
    in x_a + row space of J). Explicit segments take J at the start x_a. With the reversible
    method, normalising (implicit=True) segments take J at the end x_b instead, found by
    fixed-point iteration; an implicit step is then undone by the explicit step in the other
    direction (same J, same affine space), up to the corrector and fixed-point tolerances. A
    segment that does not converge goes on with fresh Jacobians (reported as unconverged or
    as refreshes; either breaks the exact reversal).
    """
    f_start, lo, rows, final_goal = _stage_start(net, x, k, target, reference, config, stage)
    earlier_rows = rows[rows < lo]
    smoothed = bool(net.smoothing) and config.reversible  # otherwise the exact network's rows

    def goal(s):
        g = f_start.copy()
        g[lo:] = (1 - s) * f_start[lo:] + s * target
        return g

    info = {"jacobians": 0, "refreshes": 0, "unconverged": 0, "corrections": 0, "fixed_point_iterations": 0,
            "fixed_point_changes": [], "gradient_dead": set(), "dependent": set(),
            "max_cos": 0.0, "max_cos_move": 0.0, "max_cos_exact": None, "woken": set(), "plain_model_fallbacks": 0}

    def factor(at):
        solver = _factorise(net, at, k, rows, config.dead_tolerance, exact=not smoothed)
        info["jacobians"] += 1
        info["gradient_dead"].update(solver.gradient_dead.tolist())
        info["dependent"].update(solver.dependent_rows.tolist())
        if earlier_rows.size:  # the projected direction must be orthogonal to the earlier rows
            earlier = np.flatnonzero(np.isin(solver.rows, earlier_rows))
            direction = np.zeros(solver.rows.size)
            set_part = solver.rows >= lo
            direction[set_part] = (target - f_start[lo:])[solver.rows[set_part] - lo]
            solver.earlier = earlier
            step = solver.solve(direction)
            info["max_cos"] = max(info["max_cos"], solver.max_abs_cos(step, earlier))
            if smoothed and info["max_cos_exact"] is None:
                # Smoothed rows define the steps; measure them against the true gradients once per stage.
                from .projection import max_abs_cos

                info["max_cos_exact"] = max_abs_cos(step, net.stacked_jacobian(at, earlier_rows, exact=True))
        return solver

    patient = config.reversible  # refresh a Jacobian only when the chord fails

    def exact_rows(at):
        """Reversible method: the exact network's Jacobian rows of all constrained features at
        `at` (the corrector's model of how the exact features respond; the basis stays smoothed)."""
        info["jacobians"] += 1
        return net.stacked_jacobian(at, rows, exact=True)

    def chord(x_start, g, solver, segment, refresh, x_init=None, max_refreshes=None, model=None):
        """x = x_start + J^+ (...) iterated until f(x) = g; returns (x, solver, converged).

        Convergence is judged on the rows the factorisation uses: a channel without gradient
        (dead at this point) cannot be moved and would otherwise hide the progress of the rest.

        With refresh=True a stalled iteration takes a fresh Jacobian at the current point and
        goes on (damped Gauss-Newton); the reversible method keeps the segment's basis and
        renews only the secant model from it. With refresh=False it gives up (used by the
        implicit scheme). `model`: exact Jacobian rows of all constrained features (the
        reversible method), from which the secant model starts.
        """
        x = x_start.copy() if x_init is None else x_init
        f = net.means(x, k)
        err = stage.layer_errors(f, g, solver.rows).max()
        stage.report_progress(segment, f, final_goal, rows)
        stalls = refreshes = 0
        secant, plain = _Broyden(solver), model is None
        if model is not None:
            secant.remodel(model[np.searchsorted(rows, solver.rows[solver.kept])])
        for _ in range(config.max_corrections):
            if err < config.corrector_tolerance:
                return x, solver, True
            residual = secant.residual(f, g)
            dy = secant.direction(residual)
            dx = solver.expand(dy)
            info["corrections"] += 1
            step = 1.0
            for _ in range(5):  # damping: halve the step until the error drops
                x_try = x + step * dx
                f_try = net.means(x_try, k)
                err_try = stage.layer_errors(f_try, g, solver.rows).max()
                if err_try < err:
                    break
                step *= 0.5
            improved = err_try < err
            stalls = 0 if err_try < (0.95 if patient else 0.7) * err else stalls + 1
            if improved:
                secant.update(step * dy, secant.residual(f_try, g) - residual)
                x, f, err = x_try, f_try, err_try
                stage.report_progress(segment, f, final_goal, rows)
            if not improved and not plain:
                # A channel nearly dead in the exact network but not in the softened rows makes the
                # exact model nearly singular and its steps far too long; go on from the min-norm model.
                secant, plain, stalls = _Broyden(solver), True, 0
                info["plain_model_fallbacks"] += 1
                continue
            if not improved or stalls >= 4:
                if err < 3 * config.corrector_tolerance:  # near the tolerance, where round-off stalls the steps: accept
                    return x, solver, True
                if not refresh or refreshes >= (config.max_refreshes if max_refreshes is None else max_refreshes):
                    return x, solver, False
                if patient:  # keep the basis (what makes the scheme reversible), renew the model
                    secant.remodel(net.stacked_jacobian(x, solver.rows[solver.kept], exact=True))
                    info["jacobians"] += 1
                else:  # the chord stopped contracting: a fresh Jacobian here
                    solver = factor(x)
                    secant = _Broyden(solver)
                err = stage.layer_errors(f, g, solver.rows).max()  # its active rows may differ
                info["refreshes"] += 1
                refreshes += 1
                stalls = 0
        return x, solver, err < 3 * config.corrector_tolerance

    def segment(x, sb, solver, index):
        """Advance to s_b; returns (x_b, Jacobian factorisation to use next)."""
        g = goal(sb)
        model = exact_rows(x) if config.reversible else None
        if not implicit or not config.reversible:
            x_new, solver, ok = chord(x, g, solver, index, refresh=True, model=model)
        else:
            x_new, _, ok = chord(x, g, solver, index, refresh=True, model=model)  # the predictor
            change, point, past = 0.0, x_new, []
            for _ in range(config.fixed_point_iterations):
                # Picard iteration on the Jacobian's point, Anderson-accelerated (memory 4): the
                # chord from x_a in the row space of J(point), warm-started at the last solution.
                end = factor(point)
                info["fixed_point_iterations"] += 1
                warm = x_new - end.project_out(x_new - x)
                x_next, _, ok = chord(x, g, end, index, refresh=False, x_init=warm, model=model)
                residual = x_next - point
                change = float(np.linalg.norm(x_next - x_new) / np.linalg.norm(x))
                x_new, solver = x_next, end
                if change < config.fixed_point_tolerance and ok:
                    break
                past = (past + [(point, residual)])[-5:]
                if len(past) > 1:
                    d_x = np.stack([b[0] - a[0] for a, b in zip(past, past[1:])], axis=1)
                    d_r = np.stack([b[1] - a[1] for a, b in zip(past, past[1:])], axis=1)
                    gamma = np.linalg.lstsq(d_r, residual, rcond=None)[0]
                    point = point + residual - (d_x + d_r) @ gamma
                else:
                    point = x_next
            info["fixed_point_changes"].append(change)  # the segment's reversal is as good as its last change
            if not ok:  # fall back to the explicit scheme for the rest of this segment
                x_new, solver, ok = chord(x_new, g, solver, index, refresh=True, model=model)
        if earlier_rows.size:
            info["max_cos_move"] = max(info["max_cos_move"], solver.max_abs_cos(x_new - x, solver.earlier))
        info["unconverged"] += int(not ok)
        return x_new, solver

    def lift(x, f, kept=None):
        """Departure (the paper has no such channels): layer-k channels that are zero everywhere
        have no gradient, so no corrector can move them. A min-norm step raises each one's
        largest pre-activation to (positions x target), what one position alone would need, for
        the channels where that is no more than the layer's largest pre-activation (channels with
        a larger target usually wake up on the way, and a single-position spike that large would
        derail the corrector); with kept = (Jacobian rows, their feature indices), those rows stay
        put to first order. Returns (x, woken feature rows)."""
        stuck = rows[(rows >= lo) & (f[rows] <= 0) & (final_goal[rows] > 0)]
        if not stuck.size:
            return x, stuck
        peak, top_rows, positions, ceiling = net.top_preactivation(x, k, stuck - lo)
        live = (np.linalg.norm(top_rows, axis=1) > 0) & (positions * final_goal[stuck] <= ceiling)
        stuck, demand = stuck[live], positions * final_goal[stuck[live]] - peak[live]
        if not stuck.size:
            return x, stuck
        if kept is None:
            dx = MinNormSolver(top_rows[live]).solve(demand)
        else:
            dx = MinNormSolver(np.concatenate([kept[0], top_rows[live]]), dead_tol=0.0).solve(
                np.concatenate([(final_goal - f)[kept[1]], demand]))
        woken = stuck[net.means(x + dx, k)[stuck] > 0]
        return (x + dx, woken) if woken.size else (x, woken)

    def wake(x, solver):
        """Channels still zero at the end: lift them (see `lift`), add their rows and correct.
        A fresh Jacobian (at block5 it costs more than the rest of the lift) is spent only while
        the stage is above WAKE_REFRESH_ERROR; a try that leaves the stage worse off is undone."""
        for _ in range(2):
            f = net.means(x, k)
            before = stage.layer_errors(f, final_goal, rows).max()
            base, base_rows = solver.kept_rows(), solver.rows[solver.kept]
            x_new, woken = lift(x, f, (base, base_rows))
            if not woken.size:
                break
            added = _solver(np.concatenate([base, net.stacked_jacobian(x_new, woken, exact=not smoothed)]),
                            np.concatenate([base_rows, woken]), np.setdiff1d(solver.gradient_dead, woken))
            x_new, solver_new, _ = chord(x_new, final_goal, added, n, refresh=before > WAKE_REFRESH_ERROR,
                                         max_refreshes=1)
            if stage.layer_errors(net.means(x_new, k), final_goal, rows).max() >= before:
                break
            x, solver = x_new, solver_new
            info["woken"].update(woken.tolist())
        return x, solver

    n = int(config.path_segments[k])
    if stage.layer_errors(f_start, final_goal, rows).max() < 3 * config.corrector_tolerance:
        n = 0  # already there (e.g. an image normalised before): iterating on round-off only drifts
    ends = path_ends(n, implicit, config.reversible)
    n = len(ends)
    if n and not config.reversible:  # before the first Jacobian, so that it has their rows
        x, woken = lift(x, f_start)
        info["woken"].update(woken.tolist())
    solver = factor(x) if n else None
    for i, s_end in enumerate(ends):
        x, solver = segment(x, s_end, solver, i)
        if i + 1 < n:
            solver = factor(x)  # explicit: the next segment's Jacobian at its start
    if solver is not None and not config.reversible:
        x, solver = wake(x, solver)
    f = net.means(x, k)
    if solver is not None and earlier_rows.size:
        x, f = _restore_earlier(net, x, f, k, final_goal, rows, solver, config, stage, info)
    stage.report_progress(n, f, final_goal, rows)
    return x, f, rows, {"restore_steps": info.get("restore_steps", 0), "scheme": "implicit" if implicit else "explicit",
                        "segments": n,
                        "max_abs_cos": (info["max_cos_exact"] if smoothed else info["max_cos"]) if k else None,
                        "max_abs_cos_smoothed_rows": info["max_cos"] if k and smoothed else None,
                        "max_abs_cos_segment_move": info["max_cos_move"] if k else None,
                        "jacobians": info["jacobians"], "jacobian_refreshes": info["refreshes"],
                        "plain_model_fallbacks": info["plain_model_fallbacks"],
                        "unconverged_segments": info["unconverged"],
                        "corrections": info["corrections"], "fixed_point_iterations": info["fixed_point_iterations"],
                        "fixed_point_change": max(info["fixed_point_changes"], default=0.0) if implicit else None,
                        "fixed_point_changes": [float(f"{c:.3g}") for c in info["fixed_point_changes"]] if implicit
                        else None,
                        "gradient_dead": sorted(info["gradient_dead"] - info["woken"]),
                        "woken": sorted(info["woken"]), "dependent": sorted(info["dependent"])}


def path_ends(n, implicit, reversible):
    """Where the path's segments end (s in (0, 1]): n equal segments. Reversible: a normalising
    (implicit) path's first and last segments, where the image moves fastest, are each cut into
    END_SPLITS, and an imposing path mirrors that grid, so that its segments retrace the
    normalising ones in reverse order."""
    if not reversible or n < 1:
        return [(i + 1) / n for i in range(n)]
    cuts = {Fraction(i, n) for i in range(1, n + 1)}
    cuts |= {Fraction(j, n * END_SPLITS) for j in range(1, END_SPLITS)}
    cuts |= {Fraction((n - 1) * END_SPLITS + j, n * END_SPLITS) for j in range(1, END_SPLITS)}
    normalising = [float(c) for c in sorted(cuts)]
    return normalising if implicit else [1 - s for s in reversed([0.0] + normalising[:-1])]


def _restore_earlier(net, x, f, k, goal, rows, solver, config, stage, info):
    """Bring drifted earlier layers back to their values with min-norm steps in their rows only.

    Used when the set layer could not converge (its error then stays as it is); the rows come
    from the last factorisation, so this costs forward passes only.
    """
    lo = net.offsets[k]
    errs = stage.layer_errors(f, goal, rows)
    if errs[:-1].max() < 3 * config.corrector_tolerance:
        return x, f
    feature_rows = solver.rows[solver.kept]
    mask = feature_rows < lo
    sub = MinNormSolver(solver.kept_rows()[mask], dead_tol=0.0)
    err = errs[:-1].max()
    for _ in range(config.max_corrections):
        if err < config.corrector_tolerance:
            break
        dx = sub.solve((goal - f)[feature_rows[mask]])
        step, improved = 1.0, False
        for _ in range(5):
            x_try = x + step * dx
            f_try = net.means(x_try, k)
            err_try = stage.layer_errors(f_try, goal, rows)[:-1].max()
            if err_try < err:
                improved = True
                break
            step *= 0.5
        if not improved:
            break
        x, f, err = x_try, f_try, err_try
        info["restore_steps"] = info.get("restore_steps", 0) + 1
    return x, f


def _stage_start(net, x, k, target, reference, config, stage):
    """Start of a stage: the current means, layer k's offset, the constrained rows and the end goal
    (earlier layers where they are, layer k at `target`)."""
    f_start = net.means(x, k)
    stage.earlier_goal = f_start
    lo = net.offsets[k]
    rows = _constrained_rows(net, k, f_start, target, reference.dead, config.dead_tolerance,
                             path_ends=config.reversible)
    goal = f_start.copy()
    goal[lo:] = target
    return f_start, lo, rows, goal


def _penalty_stage(net, x, k, target, reference, config, stage, implicit=None):
    """Baseline (the thesis): plain SGD on sum_{j<=k} |f_j - t_j|^2, earlier targets = start values."""
    f_start, lo, rows, goal = _stage_start(net, x, k, target, reference, config, stage)
    weight = np.zeros_like(goal)
    weight[rows] = 1.0
    x0 = x.copy()
    every = max(1, config.penalty_steps // 50)
    diverged = None
    for step in range(config.penalty_steps):
        x_new, f, _ = net.sgd_step(x, k, goal, weight, config.penalty_learning_rate)
        if not np.all(np.isfinite(f)) or np.abs(x_new).max() > 1e3:  # blown up
            diverged = step  # keep the last finite image
            break
        x = x_new
        if step % every == 0:
            stage.report_progress(step, f, goal, rows)
    f = net.means(x, k)
    stage.report_progress(config.penalty_steps, f, goal, rows)
    max_cos = None
    if k and np.all(np.isfinite(x)):
        # |cos| between the stage's total move and the earlier layers' gradients at its end.
        earlier = rows[rows < lo]
        blocks = [net.jacobian(x, j, earlier[(earlier >= net.offsets[j]) & (earlier < net.offsets[j + 1])]
                               - net.offsets[j]) for j in range(k)]
        from .projection import max_abs_cos

        max_cos = max_abs_cos(x - x0, np.concatenate(blocks))
    return x, f, rows, {"max_abs_cos": max_cos, "steps": config.penalty_steps, "diverged_at_step": diverged,
                        "learning_rate": config.penalty_learning_rate}


def set_layer(net, x, k, target, reference, config, kind="normalize", stage_index=0, num_stages=1,
              callback=None, implicit=True):
    """Move x (flat float64) so that layer k's means reach `target`, earlier layers fixed.

    Returns (x, stage report dict, convergence history).
    """
    stage = _Stage(net, k, kind, stage_index, num_stages, callback)
    config = config.at_layer(k)
    run = _penalty_stage if config.method == "penalty" else _project_stage
    x, f, rows, extra = run(net, x, k, np.asarray(target, np.float64), reference, config, stage, implicit)
    lo, hi = net.offsets[k], net.offsets[k + 1]
    f_layers = net.split(f)
    set_rows = rows[rows >= lo] - lo
    earlier_snr = {}
    for j in range(k):
        name = net.layers[j]
        live = np.setdiff1d(np.arange(net.channels[j]), reference.dead[name])
        earlier_snr[name] = _finite(snr_db(f_layers[name][live], stage_goal_earlier(stage, net, j, live)))
    report = {
        "stage": kind, "layer": net.layers[k], "method": config.method,
        "set_snr_db": _finite(snr_db(f[lo:hi][set_rows], target[set_rows])),
        "set_snr_all_channels_db": _finite(snr_db(f[lo:hi], target)),
        "earlier_snr_db": earlier_snr,
        "min_earlier_snr_db": min(earlier_snr.values()) if earlier_snr else None,
        "passes": stage.passes(), "wall_time_s": time.perf_counter() - stage.t0,
        "cpu_time_s": time.process_time() - stage.cpu0,
        "constrained_channels": int(set_rows.size), "channels": int(hi - lo),
        "unconstrained_channels": np.setdiff1d(np.arange(hi - lo), set_rows).tolist(),
        "out_of_box_fraction": float(np.mean((x < 0) | (x > 1))),
        "max_out_of_box": float(max(0.0, -x.min(), x.max() - 1)) if np.all(np.isfinite(x)) else math.inf,
    }
    for key in ("gradient_dead", "woken", "dependent"):
        if key in extra:
            extra[key] = _by_layer(net, extra[key])
    report.update(extra)
    if callback is not None:
        last = stage.history[-1]
        callback(Progress(stage=kind, layer=net.layers[k], stage_index=stage_index, num_stages=num_stages,
                          segment=last["segment"], snr_db=last["snr_db"],
                          min_earlier_snr_db=last["min_earlier_snr_db"] or math.inf, passes=stage.passes(),
                          elapsed=report["wall_time_s"], report=report, image=x.reshape(*net.shape, 3).copy()))
    return x, report, stage.history


def stage_goal_earlier(stage, net, j, live):
    """The values layer j had at the start of the stage (what it must keep)."""
    return stage.earlier_goal[net.offsets[j] + live]


def _by_layer(net, rows):
    out = {}
    for r in rows:
        j = int(np.searchsorted(net.offsets, r, side="right") - 1)
        out.setdefault(net.layers[j], []).append(int(r - net.offsets[j]))
    return out


def _finite(v):
    return float(v) if math.isfinite(v) else (1e9 if v > 0 else -1e9)


def normalize(net, image, reference, config, kind="normalize", first_stage=0, num_stages=None, callback=None):
    """Steps 1/2: for k = 1..K record c_k (layers < k already normalised), then set f_k = r_k.

    Args:
        net: a FeatureMeans for the image's shape.
        image: float array [H, W, 3] (values may leave [0, 1] slightly; docs/decoupled/NUMERICS.md).
    Returns:
        (normalised image float64 [H, W, 3], recorded features {layer: c_k}, stage reports, history).
    """
    x = np.asarray(image, np.float64).reshape(-1).copy()
    num_stages = num_stages or len(net.layers)
    recorded, reports, history = {}, [], []
    for k, name in enumerate(net.layers):
        recorded[name] = net.means(x, k)[net.offsets[k]:]
        x, report, hist = set_layer(net, x, k, reference.mean[name], reference, config, kind,
                                    first_stage + k, num_stages, callback, implicit=True)
        reports.append(report)
        history += hist
    return x.reshape(*net.shape, 3), recorded, reports, history


def impose(net, image, features, reference, config, kind="impose", first_stage=0, num_stages=None, callback=None):
    """Step 3: from a normalised image, set f_K = c_K, then f_{K-1} = c_{K-1}, ... f_1 = c_1."""
    x = np.asarray(image, np.float64).reshape(-1).copy()
    num_stages = num_stages or len(net.layers)
    reports, history = [], []
    for i, k in enumerate(reversed(range(len(net.layers)))):
        x, report, hist = set_layer(net, x, k, features[net.layers[k]], reference, config, kind,
                                    first_stage + i, num_stages, callback, implicit=False)
        reports.append(report)
        history += hist
    return x.reshape(*net.shape, 3), reports, history


def prepare(content, style, config):
    """Size the content to `config.size` (long side) and centre-crop the style to the same shape."""
    from .image import center_crop, fit_long_side
    from .models import min_image_side

    content = fit_long_side(np.asarray(content, np.float32), config.size)
    need = min_image_side(config.layers)
    if min(content.shape[:2]) < need:
        raise UserError(f"content is {content.shape[1]}x{content.shape[0]} at size {config.size}; "
                        f"{config.layers[-1]} needs at least {need} pixels on the short side; accepted: a "
                        "larger --size or a less elongated image")
    style = center_crop(np.asarray(style, np.float32), content.shape[:2])
    return content, style


def build_net(config, shape, extractor=None, notify=None):
    """The extractor (built from the config unless given) wrapped as a FeatureMeans."""
    from .models import build_extractor

    if extractor is None:
        extractor = build_extractor(model=config.model, weights=config.weights, layers=list(config.layers),
                                    seed=config.seed, notify=notify)
    smoothing = config.smoothing if config.reversible else 0.0
    return FeatureMeans(extractor, shape, config.layers, smoothing=smoothing, seed=config.seed,
                        straight_through=config.straight_through, float64=config.reversible), extractor


def decoupled_transfer(content, style, config=None, callback=None, extractor=None, notify=None):
    """Steps 0-3 of decoupled style transfer.

    Args:
        content, style: float32 [H, W, 3] in [0, 1] (any size; see `prepare`).
        config: a DecoupledConfig (defaults if None).
        callback: called with a Progress after every corrector iteration / reported SGD step.
        extractor: an existing FeatureExtractor to reuse (its layers must include config.layers).
    Returns:
        DecoupledResult.
    """
    config = (config or DecoupledConfig()).validate()
    content, style = prepare(content, style, config)
    t0 = time.perf_counter()
    net, extractor = build_net(config, content.shape[:2], extractor, notify)
    reference = reference_features(net, config.noise_draws, config.seed, config.dead_tolerance)
    n = len(net.layers)
    norm_style, style_features, r_style, h1 = normalize(net, style, reference, config, "style", 0, 3 * n, callback)
    norm_content, _, r_content, h2 = normalize(net, content, reference, config, "content", n, 3 * n, callback)
    result, r_impose, h3 = impose(net, norm_content, style_features, reference, config, "impose", 2 * n, 3 * n,
                                  callback)
    final = np.clip(result, 0, 1).astype(np.float32)
    clipped = net.split(net.means(final))
    metadata = {"version": __version__, "config": config.to_dict(), "extractor": extractor.describe(),
                "shape": list(net.shape), "total_wall_time_s": time.perf_counter() - t0,
                "after_clipping_snr_db": {name: _finite(snr_db(clipped[name], style_features[name]))
                                          for name in net.layers}}
    return DecoupledResult(image=final, normalized_style=np.clip(norm_style, 0, 1).astype(np.float32),
                           normalized_content=np.clip(norm_content, 0, 1).astype(np.float32),
                           style_features=style_features, reference=reference,
                           stages=r_style + r_content + r_impose, metadata=metadata, history=h1 + h2 + h3)


def round_trip(net, image, reference, config, callback=None):
    """Normalise an image, then impose its own recorded features; returns (back, rel. RMSE, reports).

    The relative RMSE is |back - image| / |image| over all pixel values (no clipping).
    """
    n = len(net.layers)
    image = np.asarray(image, np.float64)
    normalised, recorded, r1, _ = normalize(net, image, reference, config, "normalize", 0, 2 * n, callback)
    back, r2, _ = impose(net, normalised, recorded, reference, config, "impose", n, 2 * n, callback)
    rmse = float(np.linalg.norm(back - image) / np.linalg.norm(image))
    return back, normalised, rmse, r1 + r2


# ---------------------------------------------------------------------------------------------
# Figures (matplotlib, Agg); the caller saves them.


def convergence_figure(history, stages):
    """Per-stage convergence: SNR of the layer being set and min SNR of earlier layers vs passes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(dict.fromkeys(s["stage"] for s in stages))
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 4), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for index in sorted({h["stage_index"] for h in history if h["stage"] == kind}):
            samples = [h for h in history if h["stage_index"] == index]
            passes = [h["forward"] + h["reverse"] for h in samples]
            line, = ax.plot(passes, [min(h["snr_db"], 160) for h in samples], label=samples[0]["layer"])
            earlier = [(p, min(h["min_earlier_snr_db"], 160)) for p, h in zip(passes, samples)
                       if h["min_earlier_snr_db"] is not None]
            if earlier:
                ax.plot(*zip(*earlier), ls=":", color=line.get_color())
        ax.axhline(60, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(f"{kind}: set layer (solid), earlier layers' min (dotted)")
        ax.set_xlabel("forward + reverse-mode passes in the stage")
        ax.set_ylabel("SNR against the stage target [dB]")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def reference_figure(reference):
    """Reference channel means per layer (with the spread over noise draws), dead channels marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(reference.mean)
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 2 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        mean, std = reference.mean[name], reference.std[name]
        ax.bar(np.arange(mean.size), mean, width=1.0, color="tab:blue", yerr=std, error_kw={"lw": 0.5})
        dead = reference.dead[name]
        if dead.size:
            ax.plot(dead, np.zeros(dead.size), "rx", ms=3, label=f"{dead.size} dead")
            ax.legend(fontsize=7)
        ax.set_ylabel(name, fontsize=8)
    axes[-1, 0].set_xlabel(f"channel (reference: mean of {reference.draws} U(0,1) noise images, "
                           f"{reference.shape[1]}x{reference.shape[0]})")
    fig.tight_layout()
    return fig
