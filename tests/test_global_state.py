"""The library changes no global state: pyplot's backend, Keras's dtype policy, global random seeds."""
import random

import matplotlib
import numpy as np

from conftest import make_image


def test_runs_and_plots_leave_global_state_alone(tmp_path):
    import keras

    from nst_keras.decoupled import DecoupledConfig, convergence_figure, decoupled_transfer, reference_figure
    from nst_keras.gatys import GatysConfig, stylize
    from nst_keras.models import build_extractor
    from nst_keras.progress import plot_history

    previous_backend = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        random.seed(123)
        np.random.seed(123)
        python_state, numpy_state = random.getstate(), np.random.get_state()
        policy = keras.config.dtype_policy().name
        build_extractor("vgg16", "random", ["block1_conv1"], seed=3)
        gatys = stylize(make_image(24, 32), make_image(24, 24, 1),
                        GatysConfig(model="vgg16", weights="random", size=32, iterations=2, coarse_size=0,
                                    content_layers=("block2_conv1",), style_layers=("block1_conv1",)))
        plot_history(str(tmp_path / "loss.png"), gatys.history)
        decoupled = decoupled_transfer(make_image(32, 32), make_image(32, 32, 1), DecoupledConfig(
            size=32, weights="random", layers=("block1_conv1",), segments=(1,), noise_draws=2))
        convergence_figure(decoupled.history, decoupled.stages)
        reference_figure(decoupled.reference)
        assert matplotlib.get_backend() == "svg"
        assert random.getstate() == python_state
        after = np.random.get_state()
        assert after[0] == numpy_state[0] and np.array_equal(after[1], numpy_state[1]) and after[2:] == numpy_state[2:]
        assert keras.config.dtype_policy().name == policy
        assert (tmp_path / "loss.png").stat().st_size > 0
    finally:
        matplotlib.use(previous_backend)
