"""The penalty method, the baseline of the thesis the paper builds on: plain SGD on summed losses.

A stage descends sum_{j<=k} |f_j - t_j|^2 over the constrained rows, with the earlier layers'
targets their values at the stage's start; nothing keeps its steps off the earlier layers'
gradients, which the report measures (`max_abs_cos`).
"""
import numpy as np

from .projection import max_abs_cos


def penalty_stage(stage, x, target, reference, config):
    """`config.penalty_steps` SGD steps towards layer k's target, earlier layers held by the penalty.

    Args:
        stage: the Stage (net, layer index k, bookkeeping, callback).
        x: the image, flat float64; target: layer k's target means.
        reference, config: the Reference and the DecoupledConfig.
    Returns:
        (x, f, constrained rows, report part). A run that blows up keeps its last finite image.
    """
    net, k = stage.net, stage.k
    f_start, lo, rows, goal = stage.start(x, target, reference, config)
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
        max_cos = max_abs_cos(x - x0, np.concatenate(blocks))
    return x, f, rows, {"max_abs_cos": max_cos, "steps": config.penalty_steps, "diverged_at_step": diverged,
                        "learning_rate": config.penalty_learning_rate}
