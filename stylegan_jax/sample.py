"""Sampling library: seeds -> images, grids and style-mixing grids (the command is `stylegan_jax.cli.sample`).

Seeds map to latents exactly as the reference `generate.py` does
(`numpy.random.RandomState(seed).randn(z_dim)`), and images to uint8 the same way
(`clip(img * 127.5 + 128, 0, 255)` truncated), so a converted checkpoint writes the same PNGs as
the PyTorch original (within +-1 from float rounding). Generation is batched and jitted (one
compiled function per kind, noise mode and batch shape, shared by `Sampler.with_noise` copies).
"""
from __future__ import annotations

import os
import re
from typing import Any, Iterable, Sequence

import numpy as np

from stylegan_jax.cli_errors import CLIError

RESOLUTION_BATCH = {64: 64, 128: 32, 256: 16, 512: 8, 1024: 4}


class SampleError(CLIError, ValueError):
    """Bad sampling input: a seed list, a class index, a style layer."""


def parse_seeds(text: str) -> list[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11]."""
    seeds: list[int] = []
    for part in text.split(','):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r'(\d+)(?:-(\d+))?', part)
        if not m:
            raise SampleError(f'bad seed range {part!r} (expected e.g. 0-7,12)')
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        if b < a:
            raise SampleError(f'bad seed range {part!r}: end before start')
        seeds.extend(range(a, b + 1))
    if not seeds:
        raise SampleError('no seeds given')
    return seeds


def z_from_seeds(seeds: Iterable[int], z_dim: int) -> np.ndarray:
    """The reference generate.py latents: RandomState(seed).randn(z_dim) per seed."""
    return np.stack([np.random.RandomState(s).randn(z_dim) for s in seeds]).astype(np.float32)


def to_uint8(images: Any) -> Any:
    """NHWC float [-1, 1] -> uint8 the reference way (x * 127.5 + 128, clamp, truncate). Works in jnp and np."""
    x = images * 127.5 + 128
    x = x.clip(0, 255)
    return x.astype('uint8')


def image_grid(images: np.ndarray, cols: int | None = None, pad: int = 0) -> np.ndarray:
    """[N, H, W, C] uint8 -> one [rows*H, cols*W, C] grid (roughly square by default)."""
    n, h, w, c = images.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, c), 255, np.uint8)
    for i, im in enumerate(images):
        r, k = divmod(i, cols)
        grid[r * (h + pad):r * (h + pad) + h, k * (w + pad):k * (w + pad) + w] = im
    return grid


class Sampler:
    """A generator's variables plus jitted functions z -> uint8 images and ws -> uint8 images."""

    def __init__(self, cfg: Any, variables: dict, info: dict | None = None) -> None:
        import jax

        from stylegan_jax import networks

        self.cfg = cfg
        self.info = info or {}
        self.variables = jax.device_put(variables)
        self._gen = networks.Generator(cfg)
        self._fns: dict[tuple, Any] = {}

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, which: str = 'G_ema', *, step: int | None = None,
                        kimg: float | None = None) -> 'Sampler':
        """Load G_ema (default) from any checkpoint `checkpoint.load_networks` reads (file, directory, workdir)."""
        from stylegan_jax import checkpoint

        cfg, variables, info = checkpoint.load_network(path, which, step=step, kimg=kimg)
        return cls(cfg, variables, info)

    def with_noise(self, noise: dict[str, Any]) -> 'Sampler':
        """The same generator with its constant noise maps replaced (e.g. the ones a projection optimised)."""
        import jax

        from stylegan_jax import latents

        new = Sampler.__new__(Sampler)
        new.cfg, new.info, new._gen, new._fns = self.cfg, self.info, self._gen, self._fns  # compiled code is shared
        new.variables = jax.device_put(latents.with_noise(self.variables, noise))
        return new

    @property
    def w_avg(self) -> np.ndarray:
        """The tracked average latent [w_dim] (the truncation centre)."""
        return np.asarray(self.variables['buffers']['mapping']['w_avg'])

    @property
    def num_ws(self) -> int:
        return self.cfg.num_ws

    @property
    def z_dim(self) -> int:
        return self.cfg.z_dim

    @property
    def c_dim(self) -> int:
        return self.cfg.c_dim

    @property
    def resolution(self) -> int:
        return self.cfg.img_resolution

    def _labels(self, n: int, class_idx: int | None) -> np.ndarray | None:
        if self.c_dim == 0:
            if class_idx is not None:
                raise SampleError('--class given but the network is unconditional')
            return None
        if class_idx is None:
            raise SampleError(f'the network is conditional ({self.c_dim} classes): pass --class')
        if not 0 <= class_idx < self.c_dim:
            raise SampleError(f'--class {class_idx} out of range 0..{self.c_dim - 1}')
        c = np.zeros((n, self.c_dim), np.float32)
        c[:, class_idx] = 1
        return c

    def _fn(self, kind: str, noise_mode: str, cutoff: int | None) -> Any:
        import jax

        from stylegan_jax import networks

        key = (kind, noise_mode, cutoff)
        if key not in self._fns:
            gen = self._gen

            if kind == 'z':
                def run(variables, z, c, psi, rng):
                    img = gen.apply(variables, z, c, psi, cutoff, noise_mode, rngs={'noise': rng})
                    return to_uint8(img)
            elif kind == 'ws':
                def run(variables, ws, c, psi, rng):
                    del c, psi
                    img = gen.apply(variables, ws, noise_mode, method=networks.Generator.synthesize,
                                    rngs={'noise': rng})
                    return to_uint8(img)
            else:  # 'map'
                def run(variables, z, c, psi, rng):
                    del rng
                    return gen.apply(variables, z, c, psi, cutoff, method=networks.Generator.map)
            self._fns[key] = jax.jit(run)
        return self._fns[key]

    def _batched(self, kind: str, inputs: np.ndarray, c: np.ndarray | None, trunc: float,
                 trunc_cutoff: int | None, noise_mode: str, seed: int, batch: int) -> Iterable[np.ndarray]:
        import jax

        fn = self._fn(kind, noise_mode, trunc_cutoff)
        rng = jax.random.PRNGKey(seed)
        n = len(inputs)
        batch = max(1, min(batch, n))
        for start in range(0, n, batch):
            x = inputs[start:start + batch]
            cc = None if c is None else c[start:start + batch]
            m = len(x)
            if m < batch:  # pad the last batch so it reuses the compiled function
                x = np.concatenate([x, np.repeat(x[-1:], batch - m, 0)])
                cc = None if cc is None else np.concatenate([cc, np.repeat(cc[-1:], batch - m, 0)])
            rng, sub = jax.random.split(rng)
            yield np.asarray(fn(self.variables, x, cc, np.float32(trunc), sub))[:m]

    def default_batch(self) -> int:
        return RESOLUTION_BATCH.get(self.resolution, 8 if self.resolution > 1024 else 64)

    def iter_images_from_z(self, z: np.ndarray, trunc: float = 1.0, trunc_cutoff: int | None = None,
                           noise_mode: str = 'const', seed: int = 0, class_idx: int | None = None,
                           batch: int | None = None) -> Iterable[np.ndarray]:
        """Yield uint8 [b, H, W, C] batches for latents z [N, z_dim]."""
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise SampleError(f'z must have shape [N, {self.z_dim}], got {z.shape}')
        c = self._labels(len(z), class_idx)
        return self._batched('z', z, c, trunc, trunc_cutoff, noise_mode, seed, batch or self.default_batch())

    def images_from_z(self, z: np.ndarray, trunc: float = 1.0, trunc_cutoff: int | None = None,
                      noise_mode: str = 'const', seed: int = 0, class_idx: int | None = None,
                      batch: int | None = None) -> np.ndarray:
        """uint8 [N, H, W, C] images for latents z [N, z_dim]."""
        return np.concatenate(list(self.iter_images_from_z(z, trunc, trunc_cutoff, noise_mode, seed,
                                                           class_idx, batch)))

    def ws_from_z(self, z: np.ndarray, trunc: float = 1.0, trunc_cutoff: int | None = None,
                  class_idx: int | None = None, batch: int = 256) -> np.ndarray:
        """Mapped (and truncated) latents [N, num_ws, w_dim]."""
        z = np.asarray(z, np.float32)
        c = self._labels(len(z), class_idx)
        return np.concatenate(list(self._batched('map', z, c, trunc, trunc_cutoff, 'none', 0, batch)))

    def iter_images_from_ws(self, ws: np.ndarray, noise_mode: str = 'const', seed: int = 0,
                            batch: int | None = None) -> Iterable[np.ndarray]:
        """Yield uint8 [b, H, W, C] batches for per-layer latents ws [N, num_ws, w_dim]."""
        ws = np.asarray(ws, np.float32)
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.cfg.w_dim):
            raise SampleError(f'ws must have shape [N, {self.num_ws}, {self.cfg.w_dim}], got {list(ws.shape)}')
        return self._batched('ws', ws, None, 1.0, None, noise_mode, seed, batch or self.default_batch())

    def images_from_ws(self, ws: np.ndarray, noise_mode: str = 'const', seed: int = 0,
                       batch: int | None = None) -> np.ndarray:
        """uint8 images for per-layer latents ws [N, num_ws, w_dim]."""
        return np.concatenate(list(self.iter_images_from_ws(ws, noise_mode, seed, batch)))


def style_mix_grid(sampler: Sampler, row_seeds: Sequence[int], col_seeds: Sequence[int],
                   col_styles: Sequence[int], trunc: float = 1.0, noise_mode: str = 'const',
                   class_idx: int | None = None) -> np.ndarray:
    """The reference style_mixing.py grid: row images take `col_styles` layers from the column seed.

    The top-left cell is blank, the first row shows the column seeds, the first column the row seeds.
    """
    seeds = list(dict.fromkeys([*row_seeds, *col_seeds]))
    ws = sampler.ws_from_z(z_from_seeds(seeds, sampler.z_dim), trunc, class_idx=class_idx)
    w_of = dict(zip(seeds, ws))
    bad = [s for s in col_styles if not 0 <= s < ws.shape[1]]
    if bad:
        raise SampleError(f'style layer {bad[0]} out of range 0..{ws.shape[1] - 1}')
    mixes = []
    for r in row_seeds:
        for c in col_seeds:
            w = w_of[r].copy()
            w[list(col_styles)] = w_of[c][list(col_styles)]
            mixes.append(w)
    singles = sampler.images_from_ws(np.stack([w_of[s] for s in seeds]), noise_mode)
    img_of = dict(zip(seeds, singles))
    mixed = sampler.images_from_ws(np.stack(mixes), noise_mode)
    h, w_, ch = singles.shape[1:]
    cells = [np.full((h, w_, ch), 255, np.uint8)] + [img_of[c] for c in col_seeds]
    for i, r in enumerate(row_seeds):
        cells.append(img_of[r])
        cells.extend(mixed[i * len(col_seeds):(i + 1) * len(col_seeds)])
    return image_grid(np.stack(cells), cols=len(col_seeds) + 1)


def save_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write one uint8 [H, W, C] image (C = 1 or 3) as PNG, atomically (a temporary name, then renamed),
    so a picture someone is looking at (or a crash mid-write) never leaves a truncated file."""
    from PIL import Image
    tmp = f'{os.fspath(path)}.tmp'
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(tmp, format='PNG')
    os.replace(tmp, path)


def __getattr__(name: str) -> Any:
    # The `stylegan-sample` command lives in stylegan_jax.cli.sample; `sample.main` keeps old callers working.
    if name == 'main':
        from stylegan_jax.cli.sample import main
        return main
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
