"""nst_keras: optimisation-based neural style transfer for Keras 3 / TensorFlow 2.

The public API, re-exported from the module that owns each name (docs/ARCHITECTURE.md has the
map). Names are imported on first use, so that `import nst_keras` (and the CLI's start-up) does
not load TensorFlow before it is needed.
"""
__version__ = "0.1.0"

_EXPORTS = {
    "UserError": "errors",
    "load_image": "image", "save_png": "image", "fit_long_side": "image", "resize_to": "image",
    "build_extractor": "models", "FeatureExtractor": "models", "preprocess": "models", "deprocess": "models",
    "gram_matrix": "losses",
    "GatysProgress": "progress", "DecoupledProgress": "progress",
    "GatysConfig": "gatys.config", "stylize": "gatys.pipeline", "StylizeResult": "gatys.pipeline",
    "Evaluator": "gatys.evaluator",
    "decoupled_transfer": "decoupled", "DecoupledConfig": "decoupled",
    "VGGFeatures": "layers", "GramMatrix": "layers",
    "PerceptualLoss": "losses", "StyleLoss": "losses", "TotalVariationLoss": "losses", "StyleTransferLoss": "losses",
}
# Subpackages and modules reachable as attributes after `import nst_keras` (nst_keras.losses.PerceptualLoss).
_MODULES = ("layers", "losses", "models", "image", "color", "progress", "gatys", "decoupled", "video", "errors")
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    import importlib

    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'nst_keras' has no attribute {name!r}")
