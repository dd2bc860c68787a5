"""Batch stylisation: folders, parameter sweeps and clusters, on Ray.

Modules: plan (inputs expanded, the sweep grid, output names, what is finished; no Ray),
worker (BatchWorker: one network per process, one item per call; no Ray import), run (the
driver: the Ray runtime, actors, retries, the manifest, the progress bar, the sweep sheet).
Ray is imported only by `run`, on first use, so importing nst_keras never loads it.
"""
