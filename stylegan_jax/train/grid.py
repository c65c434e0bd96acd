"""Sample grids during training: G_ema on fixed seeds (noise const, psi 1), as the reference's fakes*.png.

    grid = GridSampler(cfg, seeds, batch=4)  # rendered 4 at a time, like training's train.batch_gpu rounds
    images = grid.render(ema_variables)       # uint8 [N, R, R, C]
    grid.write(images, WORKDIR / 'samples' / 'grid_kimg00200.png')

One jitted function per sampler; with the persistent compilation cache (`compile_cache.enable()`,
which run_train.py turns on) a resumed run or a second sampler for the same network does not pay
XLA's compilation again.
"""
from __future__ import annotations

import pathlib

import jax
import numpy as np

from stylegan_jax import networks
from stylegan_jax.sample import image_grid, save_png, to_uint8, z_from_seeds

__all__ = ['GridSampler']


class GridSampler:
    """G_ema on fixed seeds -> uint8 images and grid PNGs.

    Args:
      cfg: the generator's architecture.
      seeds: one image per seed, in order.
      batch: images per G call at most (training passes train.batch_gpu, as the reference splits its
        grid by batch_gpu, so the grid never needs more memory than a training round); the last round
        is padded to the same shape, so one compiled function serves every round. None: all at once.
    """

    def __init__(self, cfg: networks.NetworkConfig, seeds: list[int], batch: int | None = None) -> None:
        self.cfg = cfg
        self.z = z_from_seeds(seeds, cfg.z_dim)
        self.c = np.zeros((len(seeds), cfg.c_dim), np.float32)
        if cfg.c_dim:  # classes in turn, so a conditional grid shows every class
            self.c[np.arange(len(seeds)), np.arange(len(seeds)) % cfg.c_dim] = 1
        self.batch = len(seeds) if batch is None else max(1, min(int(batch), len(seeds)))
        gen = networks.Generator(cfg)

        def run(variables: dict, z: jax.Array, c: jax.Array) -> jax.Array:
            return to_uint8(gen.apply(variables, z, c if cfg.c_dim else None, 1.0, None, 'const'))

        self._fn = jax.jit(run)

    def render(self, variables: dict) -> np.ndarray:
        """uint8 [N, R, R, C] images of G with `variables` (unreplicated {'params', 'buffers'})."""
        n, b = len(self.z), self.batch
        pad = -n % b
        z = np.concatenate([self.z, np.repeat(self.z[-1:], pad, 0)]) if pad else self.z
        c = np.concatenate([self.c, np.repeat(self.c[-1:], pad, 0)]) if pad else self.c
        rounds = [np.asarray(self._fn(variables, z[i:i + b], c[i:i + b])) for i in range(0, n + pad, b)]
        return np.concatenate(rounds)[:n]

    @staticmethod
    def write(images: np.ndarray, path: pathlib.Path) -> pathlib.Path:
        """Tile `images` into one PNG at `path` (atomically, `sample.save_png`)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(path, image_grid(images))
        return path

    def save(self, variables: dict, path: pathlib.Path) -> np.ndarray:
        """render + write; returns the images."""
        images = self.render(variables)
        self.write(images, path)
        return images
