"""The optimisers of Gatys mode behind one function: SciPy L-BFGS-B, Adam and SGD.

Every optimiser minimises an Evaluator's loss from an image x0, calls on_iteration(x, terms)
after every iteration (returning True stops it) and returns (image, stop_reason).
"""
import numpy as np
import scipy.optimize
import tensorflow as tf

from .evaluator import NonFiniteLoss
from .memory import LBFGS_MAXCOR

# The loss is scaled so that it starts at this value: L-BFGS-B's tolerances are then meaningful
# whatever the weights (an unscaled tiny loss stopped it after one evaluation), and the learning
# rates of Adam and SGD do not depend on the loss weights.
START_VALUE = 1e3
DEFAULT_LEARNING_RATES = {"adam": 0.02, "sgd": 2e-3}


def optimize(evaluator, x0, iterations, on_iteration, optimizer="lbfgs", learning_rate=None):
    """Minimise the evaluator's loss from x0 for `iterations` iterations.

    Args:
        evaluator: an Evaluator for x0's shape.
        x0: float32 [H, W, 3] in [0, 1].
        iterations: iteration budget.
        on_iteration: called as on_iteration(x, terms) after every iteration with the flat image
            and its weighted loss terms; returning True stops the run.
        optimizer: 'lbfgs' (bounds [0, 1]), 'adam' or 'sgd' (both clip to [0, 1] after each step).
        learning_rate: step size of adam and sgd (None: DEFAULT_LEARNING_RATES).

    Returns:
        (image float32 [H, W, 3] or None if no good image was reached, stop reason or None):
        'callback' or 'non-finite loss'; None when the budget was used.
    """
    if optimizer == "lbfgs":
        return _lbfgs(evaluator, x0, iterations, on_iteration)
    rate = learning_rate or DEFAULT_LEARNING_RATES[optimizer]
    return _keras_optimizer(evaluator, x0, iterations, on_iteration, optimizer, rate)


def _start_scale(evaluator, x0):
    terms0, _ = evaluator.evaluate(x0)
    return START_VALUE / max(float(terms0.sum()), 1e-30)


def _lbfgs(evaluator, x0, iterations, on_iteration):
    """L-BFGS-B inside [0, 1]."""
    try:
        scale = _start_scale(evaluator, x0)
    except NonFiniteLoss:
        return x0, "non-finite loss"
    fun = evaluator.scipy_fun(scale)
    state = {"x": x0.ravel().astype(np.float64), "stop": None}
    last = {}

    def wrapped(x):
        value, grad = fun(x)
        last["x"], last["terms"] = x.copy(), evaluator.last_terms.copy()
        return value, grad

    def callback(intermediate_result):
        x = intermediate_result.x
        terms = last["terms"] if np.array_equal(last.get("x"), x) else evaluator.terms_at(x)
        state["x"] = x.copy()
        if on_iteration(x, terms):
            state["stop"] = "callback"
            raise StopIteration

    try:
        scipy.optimize.minimize(
            wrapped, state["x"], jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * x0.size,
            callback=callback,
            # gtol=0 and a tiny ftol: stop on the iteration budget, not on the loss's scale.
            options={"maxiter": iterations, "maxfun": 2 * iterations + 20, "gtol": 0.0, "ftol": 1e-12,
                     "maxcor": LBFGS_MAXCOR})
    except NonFiniteLoss:
        state["stop"] = "non-finite loss"
    return state["x"].reshape(x0.shape).astype(np.float32), state["stop"]


def _keras_optimizer(evaluator, x0, iterations, on_iteration, kind, learning_rate):
    """Adam (the TensorFlow tutorial's settings) or SGD, clipping to [0, 1] after each step."""
    import keras

    if kind == "adam":
        opt = keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.99, epsilon=0.1)
    else:
        opt = keras.optimizers.SGD(learning_rate=learning_rate)
    var = tf.Variable(x0[None])
    try:
        scale = tf.constant(_start_scale(evaluator, x0), tf.float32)
    except NonFiniteLoss:
        return x0, "non-finite loss"

    @tf.function
    def step():
        terms, grad = evaluator.loss_and_grad(var)
        opt.apply_gradients([(grad * scale, var)])
        var.assign(tf.clip_by_value(var, 0.0, 1.0))
        return terms

    stop = None
    for _ in range(iterations):
        terms = step().numpy()
        evaluator.evaluations += 1
        if not np.all(np.isfinite(terms)):
            return None, "non-finite loss"
        x = var.numpy()[0]
        if on_iteration(x, terms):  # the loss of the image this step started from: no extra pass
            stop = "callback"
            break
    return var.numpy()[0], stop
