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
trip then comes back only as well as they do.

Layout, one idea per module: config (DecoupledConfig, the one home of defaults), records
(Reference, DecoupledResult, measures), features (FeatureMeans: the compiled features and
Jacobians), smoothing (the network run op by op: softened derivatives, float64 features),
reference (step 0), stage (a stage's bookkeeping), projection (min-norm linear
algebra), projected / reversible / penalty (the three schemes), sizes (the rule that refuses a
working shape too small for the 60 dB precision, before any stage), polish (the saved image, in
[0, 1] and 8 bits, brought back to the result's features), pipeline (steps 1-3 and the runs
built from them), figures.
"""
from .config import END_SPLITS, LAYERS, METHODS, SEGMENTS, WAKE_REFRESH_ERROR, DecoupledConfig
from .features import FeatureMeans
from .figures import convergence_figure, reference_figure
from .pipeline import build_net, decoupled_transfer, impose, normalize, prepare, round_trip
from .records import DecoupledResult, Reference, snr_db, totals
from .reference import reference_features
from .pipeline import set_layer
from .sizes import check_positions
from .stage import StageContext, path_ends

__all__ = [
    "DecoupledConfig", "DecoupledResult", "FeatureMeans", "Reference", "StageContext",
    "decoupled_transfer", "normalize", "impose", "round_trip", "prepare", "build_net", "set_layer",
    "reference_features", "snr_db", "totals", "path_ends", "convergence_figure", "reference_figure",
    "check_positions", "METHODS", "SEGMENTS", "LAYERS", "END_SPLITS", "WAKE_REFRESH_ERROR",
]
