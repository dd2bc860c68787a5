"""The network run op by op: softened derivatives, float64 features, pre-activations.

The reversible method needs what a Keras model does not give: Jacobians of the network with
the derivatives of ReLU and max pool softened, channel means in float64, and a layer's
convolution output before its ReLU (to wake channels that are zero everywhere). All of them run
the operations of `FeatureExtractor.conv_stack()` in one walk (`OpByOp._walk`), differing only
in what they do at the ReLUs and pools and in what they read off on the way.
"""
import numpy as np

from ..models import preprocess


def _exact_relu(name, z):
    import tensorflow as tf

    return tf.nn.relu(z)


def _exact_pool(name, y):
    import tensorflow as tf

    return tf.nn.max_pool2d(y, 2, 2, "VALID")


class OpByOp:
    """A VGG's operations (a `conv_stack()` list) run one by one on images in [0, 1].

    Args:
        ops: the NetworkOp list, in network order.
        smoothing: tau of each softened op is this fraction of the op's input spread on `noise`
            (pre-activations for ReLUs, inputs for pools); 0: no softened ops.
        straight_through: soften only the derivatives (the values stay the exact network's).
        noise: float32 [1, H, W, 3] U(0, 1) noise measuring the spreads (needed when smoothing).
        last: the deepest layer whose spreads are measured.
    """

    def __init__(self, ops, smoothing=0.0, straight_through=False, noise=None, last=None):
        self.ops = list(ops)
        unknown = sorted({op.kind for op in self.ops} - {"conv", "pool"})
        if unknown:
            raise ValueError(f"op kinds {unknown} in the network; accepted: 'conv' and 'pool' (a max-pooled VGG, "
                             "as decoupled mode's features are defined on)")
        self.smoothing = float(smoothing)
        self.straight_through = bool(straight_through)
        self.tau, self._tensors = {}, {}
        if self.smoothing:
            scales = self.spreads(noise, last or self.ops[-1].name)
            self.tau = {name: self.smoothing * max(v, 1e-6) for name, v in scales.items()}

    def _walk(self, x, relu=_exact_relu, pool=_exact_pool):
        """Yield (op name, pre-activation, output) for each op on preprocess(x), in x's dtype
        (the pre-activation is None for pools); relu(name, z) and pool(name, y) are the ops."""
        import tensorflow as tf

        y = preprocess(x)
        for op, params in zip(self.ops, self._params(y.dtype)):
            if op.kind == "conv":
                z = tf.nn.conv2d(y, params[0], 1, "SAME") + params[1]
                y = relu(op.name, z)
                yield op.name, z, y
            else:
                y = pool(op.name, y)
                yield op.name, None, y

    def _params(self, dtype):
        """The convolutions' (kernel, bias) as tensors of `dtype` (None for pools), made once and
        outside any traced function: captured as inputs, not folded into a graph as constants."""
        import tensorflow as tf

        if dtype not in self._tensors:
            with tf.init_scope():
                self._tensors[dtype] = [(tf.constant(op.kernel, dtype), tf.constant(op.bias, dtype))
                                        if op.kind == "conv" else None for op in self.ops]
        return self._tensors[dtype]

    def softened(self, x, layer):
        """Layer `layer`'s output with every ReLU softened to tau softplus(z / tau) and every 2x2
        max pool to tau logsumexp(z / tau), tau per op (their offsets add up with depth). With
        straight_through only the derivatives are softened (a sigmoid, a softmax): the values
        stay the exact network's, so the soft derivatives are taken where it is."""
        import tensorflow as tf

        def relu(name, z):
            tau = self.tau[name]
            return self._soft(tau * tf.nn.softplus(z / tau), tf.nn.relu(z))

        def pool(name, y):
            tau = self.tau[name]
            _, h, w, c = y.shape
            soft = tau * tf.reduce_logsumexp(tf.reshape(y, [1, h // 2, 2, w // 2, 2, c]) / tau, axis=[2, 4])
            return self._soft(soft, tf.nn.max_pool2d(y, 2, 2, "VALID"))

        for name, _, y in self._walk(x, relu, pool):
            if name == layer:
                return y
        raise ValueError(f"layer {layer} not found")

    def pre_activation(self, x, layer):
        """The exact network's convolution output of `layer` before its ReLU."""
        for name, z, _ in self._walk(x):
            if name == layer:
                return z
        raise ValueError(f"layer {layer} not found")

    def channel_means(self, x, layers):
        """Concatenated channel means of `layers` (exact network), in x's dtype (float64 for
        features below float32 round-off)."""
        import tensorflow as tf

        out = []
        for name, z, y in self._walk(x):
            if name in layers:
                out.append(tf.reduce_mean(y, axis=[1, 2])[0])
                if len(out) == len(layers):
                    return tf.concat(out, axis=0)
        raise ValueError(f"layers {layers} not found")

    def spreads(self, noise, last):
        """{op name: standard deviation of its pre-activation (conv) or input (pool)} on noise,
        for the ops up to `last` (eager)."""
        import tensorflow as tf

        scales = {}

        def relu(name, z):
            scales[name] = float(tf.math.reduce_std(z))
            return tf.nn.relu(z)

        def pool(name, y):
            scales[name] = float(tf.math.reduce_std(y))
            return tf.nn.max_pool2d(y, 2, 2, "VALID")

        for name, _, _ in self._walk(tf.constant(np.asarray(noise, np.float32)), relu, pool):
            if name == last:
                return scales
        raise ValueError(f"layer {last} not found")

    def _soft(self, soft, exact):
        """The softened op; with straight_through, the exact value with the softened op's gradient."""
        import tensorflow as tf

        return soft + tf.stop_gradient(exact - soft) if self.straight_through else soft
