"""The method's features f_k(x), the spatial channel means of layer k, compiled for one image shape.

FeatureMeans owns every network pass a stage makes, and counts them: the concatenated means of
layers 0..k (float32, or float64 for the reversible method), their Jacobian rows (vectorised
reverse mode through the network cut at layer k, of the exact or the softened network), a
layer's largest pre-activations with their gradients, and the penalty method's SGD step. The
per-layer Keras models come from `FeatureExtractor.truncated`; op-by-op passes from `OpByOp`.
"""
import functools

import numpy as np

from ..models import layer_channels
from .config import LAYERS
from .smoothing import OpByOp


def _compiled(fn, *signature):
    """fn as a graph function of fixed shapes and dtypes. Without AutoGraph: these functions have
    no control flow on tensors, and AutoGraph cannot convert the extractor's closures."""
    import tensorflow as tf

    return tf.function(fn, input_signature=list(signature), autograph=False)


class FeatureMeans:
    """Compiled channel-mean features, their Jacobians and SGD steps for one image shape.

    Args:
        extractor: a nst_keras.models.FeatureExtractor whose layers include `layers`.
        shape: (h, w) of the images; all compiled functions have this fixed shape.
        layers: the feature layers, shallow to deep.
        smoothing, straight_through: see DecoupledConfig (the Jacobians of a softened network);
            seed: of the noise that sets the softening's scales.
        float64: compute the features (not the Jacobians) in float64, so that a corrector can
            drive them far below float32 round-off (the reversible method).
        chunk: Jacobian rows computed per vectorised reverse-mode call (None: by image size).
    """

    def __init__(self, extractor, shape, layers=LAYERS, *, smoothing=0.0, straight_through=False, float64=False,
                 chunk=None, seed=0):
        import tensorflow as tf

        self.layers = tuple(layers)
        self.shape = tuple(shape)
        h, w = self.shape
        self.channels = [layer_channels(name) for name in self.layers]
        self.offsets = np.concatenate([[0], np.cumsum(self.channels)]).astype(int)
        self.chunk = int(max(8, min(64, 64 * 128 * 128 // (h * w)))) if chunk is None else chunk
        self.passes = {"forward": 0, "reverse": 0}
        self.smoothing, self.float64 = float(smoothing), bool(float64)
        noise = np.random.default_rng(seed).random((1, h, w, 3)).astype(np.float32) if smoothing else None
        self.op_by_op = OpByOp(extractor.conv_stack(), smoothing, straight_through, noise, self.layers[-1])
        self._top, self._positions = {}, {}
        spec = tf.TensorSpec([1, h, w, 3], tf.float32)
        idx_spec = tf.TensorSpec([self.chunk], tf.int32)
        self._means, self._jac, self._jac_exact, self._sgd = [], [], [], []
        for k, name in enumerate(self.layers):
            means = self._means_function(extractor.truncated(self.layers[:k + 1]))
            vec = tf.TensorSpec([int(self.offsets[k + 1])], tf.float32)
            single = extractor.truncated([name])
            jac = functools.partial(self._jacobian_rows, model=single, name=name, smooth=bool(smoothing))
            if self.float64:  # the exact network op by op, in float64
                means64 = functools.partial(self.op_by_op.channel_means, layers=self.layers[:k + 1])
                self._means.append(_compiled(means64, tf.TensorSpec([1, h, w, 3], tf.float64)))
            else:
                self._means.append(_compiled(means, spec))
            self._jac.append(_compiled(jac, spec, idx_spec))
            self._jac_exact.append(_compiled(functools.partial(jac, smooth=False), spec, idx_spec)
                                   if smoothing else self._jac[-1])
            self._sgd.append(_compiled(functools.partial(self._sgd_step, means=means), spec, vec, vec,
                                       tf.TensorSpec([], tf.float32)))

    @staticmethod
    def _means_function(features):
        """x -> concatenated channel means of the truncated model's outputs (float32)."""
        import tensorflow as tf

        def means(x):
            return tf.concat([tf.reduce_mean(y, axis=[1, 2])[0] for y in features(x)], axis=0)
        return means

    def _jacobian_rows(self, x, idx, model, name, smooth):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            out = self.op_by_op.softened(x, name) if smooth else model(x)[0]
            y = tf.gather(tf.reduce_mean(out, axis=[1, 2])[0], idx)
        return tf.reshape(tape.jacobian(y, x), [tf.shape(idx)[0], -1])

    @staticmethod
    def _sgd_step(x, target, weight, rate, means):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            f = means(x)
            loss = tf.reduce_sum(weight * tf.square(f - target))
        grad = tape.gradient(loss, x)
        return x - rate * grad, f, grad

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
                    z = self.op_by_op.pre_activation(x, name)
                    self._positions[k] = int(z.shape[1] * z.shape[2])  # static: set while tracing
                    peak = tf.reduce_max(tf.gather(tf.reshape(z, [-1, z.shape[-1]]), idx, axis=1), axis=0)
                return peak, tf.reshape(tape.jacobian(peak, x), [tf.shape(idx)[0], -1]), tf.reduce_max(z)

            spec = tf.TensorSpec([1, *self.shape, 3], tf.float32)
            self._top[k] = _compiled(top, spec, tf.TensorSpec([self.chunk], tf.int32))
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
        """One step x - rate * grad of sum(weight (f(x) - target)^2) over layers 0..k (float32);
        returns (new x, f(x), grad) as float64."""
        import tensorflow as tf

        self.passes["forward"] += 1
        self.passes["reverse"] += 1
        new, f, grad = self._sgd[k](self._tensor(x), tf.constant(target, tf.float32),
                                    tf.constant(weight, tf.float32), tf.constant(rate, tf.float32))
        return (new.numpy().reshape(-1).astype(np.float64), f.numpy().astype(np.float64),
                grad.numpy().reshape(-1).astype(np.float64))
