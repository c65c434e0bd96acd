"""GAN metrics matching pytorch-fid / the StyleGAN papers: FID, KID, IS, precision/recall.

inception.py  the FID Inception-V3 in Flax, weight loading/download, pytorch-fid's resize rule
scores.py     the metrics as pure float64 NumPy functions of features
stats.py      cached real-set statistics (.npz)
sources.py    image folders, TFDS dataset directories, checkpoints
evaluator.py  `Evaluator`, what training calls every N kimg
cli.py        `stylegan-metrics`

Submodules are imported lazily by their users so that `import stylegan_jax.metrics` stays cheap.
"""
