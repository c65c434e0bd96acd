"""The image distances projection and PPL choose from, in order of preference.

Each is a feature map f (NHWC float images in [-1, 1] -> [N, D]) and the distance is the squared
L2 norm ||f(a) - f(b)||^2, so it is quadratic in small image changes (what PPL's 1/eps^2 needs):

  'vgg16-lpips'      LPIPS VGG16 features (vgg16.py), the reference projector's and PPL's distance;
                     needs the reference's `vgg16.pt` (--vgg16 FILE)
  'inception-pool3'  the 2048-d pool3 features of the FID Inception (--inception-weights FILE);
                     a perceptual but not an LPIPS distance
  'pixel-laplacian'  no weights: pixel MSE plus the mean squared difference of every level of a
                     Laplacian pyramid (2x2 average pooling down to 8x8, nearest up-sampling), which
                     weights coarse structure (colour, layout) far more than plain MSE does

The numbers of the three are on different scales: a PPL or a projection loss is only comparable
with another computed with the same distance, so every output names the one used.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

VGG16, INCEPTION, PIXEL = 'vgg16-lpips', 'inception-pool3', 'pixel-laplacian'
PYRAMID_MIN_SIZE = 8


@dataclasses.dataclass(frozen=True)
class Distance:
    """A named feature map; `params` are its weights (None for the pixel distance)."""
    name: str
    description: str
    features_fn: Callable[[Any, jax.Array], jax.Array] = dataclasses.field(compare=False)
    params: Any = dataclasses.field(default=None, compare=False, repr=False)

    def features(self, images: jax.Array) -> jax.Array:
        """[N, H, W, C] in [-1, 1] -> [N, D] (jit-friendly; params are closed over)."""
        return self.features_fn(self.params, images)

    def __call__(self, a: jax.Array, b: jax.Array) -> jax.Array:
        """Per-image squared feature distance [N]."""
        return jnp.sum(jnp.square(self.features(a) - self.features(b)), axis=1)


def laplacian_pyramid(x: jax.Array, min_size: int = PYRAMID_MIN_SIZE) -> list[jax.Array]:
    """Band-pass levels G_j - up(G_{j+1}) from fine to coarse, then the coarsest Gaussian level."""
    levels = []
    while x.shape[1] > min_size:
        n, h, w, c = x.shape
        down = x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
        levels.append(x - jnp.repeat(jnp.repeat(down, 2, axis=1), 2, axis=2))
        x = down
    levels.append(x)
    return levels


def pixel_features(params: Any, images: jax.Array) -> jax.Array:
    """Pixels and Laplacian levels, each scaled by 1/sqrt(its size) (so each term is a mean)."""
    del params
    x = images.astype(jnp.float32)
    parts = [x] + laplacian_pyramid(x)
    return jnp.concatenate([p.reshape(p.shape[0], -1) / np.sqrt(np.prod(p.shape[1:])) for p in parts], axis=1)


def pixel() -> Distance:
    return Distance(PIXEL, 'pixel MSE + Laplacian-pyramid MSE (no weights needed)', pixel_features)


def vgg16(path: str | os.PathLike) -> Distance:
    from stylegan_jax.perceptual import vgg16 as vgg

    params = jax.device_put(vgg.load_params(path))
    return Distance(VGG16, f'VGG16 LPIPS features ({os.path.basename(path)})', vgg.lpips_features, params)


def inception(path: str | os.PathLike) -> Distance:
    from stylegan_jax.metrics import inception as inc

    params = jax.device_put(inc.load_params(path))
    return Distance(INCEPTION, f'FID Inception pool3 features ({os.path.basename(path)})', inc.pool_features, params)


def choose(vgg16_weights: str | os.PathLike | None = None,
           inception_weights: str | os.PathLike | None = None) -> Distance:
    """The preferred distance the given weight files allow: VGG16 LPIPS, then Inception, then pixels."""
    if vgg16_weights:
        return vgg16(vgg16_weights)
    if inception_weights:
        return inception(inception_weights)
    return pixel()
