"""Step 0 of the method: the reference features, the expected channel means of U(0, 1) noise.

The method's authors use the expectation over noise; the mean of a few draws estimates it (the
spread, reported per layer, is small because every feature averages many positions). Channels
whose reference mean is (nearly) zero are dead and never constrained.
"""
import numpy as np

from .records import Reference


def reference_features(net, draws=8, seed=0, dead_tolerance=1e-4):
    """Mean and spread of the features of `draws` U(0, 1) noise images of the net's shape.

    Args:
        net: a FeatureMeans.
        draws, seed: noise images averaged, and the seed of their generator.
        dead_tolerance: a channel whose mean is below this fraction of its layer's largest is dead.
    Returns:
        Reference.
    """
    rng = np.random.default_rng(seed)
    samples = np.stack([net.means(rng.random(net.size)) for _ in range(draws)])
    mean, std = samples.mean(axis=0), samples.std(axis=0, ddof=1 if draws > 1 else 0)
    mean_d, std_d = net.split(mean), net.split(std)
    dead = {n: np.flatnonzero(m <= dead_tolerance * max(m.max(), 1e-30)) for n, m in mean_d.items()}
    return Reference(mean=mean_d, std=std_d, dead=dead, shape=net.shape, draws=draws)
