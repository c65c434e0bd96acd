"""A built-in demo dataset: procedurally drawn cartoon portraits, generated locally (no download).

Each image is a front-facing face drawn from a handful of random attributes (background gradient,
skin tone, hair colour and style, eye colour, face shape, pose offset, smile), rendered at 4x the
target resolution and box-filtered down, so edges are anti-aliased. The structure is simple and
strongly aligned (like FFHQ crops), so a small StyleGAN learns recognisable faces within minutes
on a CPU, and the variety of colours gives the generator something to vary.

Every image depends only on ``(seed, index, resolution)``: asking for more images later keeps the
first ones identical. A manifest ``demo_dataset.json`` makes generation idempotent.
"""
from __future__ import annotations

import json
import os
import pathlib

import numpy as np

__all__ = ['ensure_demo_dataset', 'draw_face', 'MANIFEST']

MANIFEST = 'demo_dataset.json'
_SUPERSAMPLE = 4
_VERSION = 1  # bump when the drawing changes so stale folders are regenerated

_SKIN = np.array([[255, 224, 196], [241, 194, 160], [224, 172, 130], [198, 134, 92],
                  [161, 102, 65], [110, 70, 45]], np.float32)
_HAIR = np.array([[20, 17, 15], [60, 40, 25], [110, 70, 35], [180, 130, 70], [230, 200, 130],
                  [160, 50, 30], [200, 200, 205], [60, 80, 160], [190, 80, 150]], np.float32)
_EYES = np.array([[70, 45, 25], [40, 90, 160], [60, 120, 70], [110, 110, 110], [20, 20, 20]],
                 np.float32)


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    """Boolean mask of an axis-aligned ellipse in unit coordinates."""
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def draw_face(rng: np.random.Generator, resolution: int) -> np.ndarray:
    """One portrait as uint8 [resolution, resolution, 3], drawn with random attributes from ``rng``."""
    s = resolution * _SUPERSAMPLE
    # Unit coordinates: y down, x right, both in [0, 1] across the image.
    yy, xx = np.meshgrid((np.arange(s) + 0.5) / s, (np.arange(s) + 0.5) / s, indexing='ij')

    # Background: vertical gradient between two random colours.
    top, bottom = rng.uniform(40, 230, 3), rng.uniform(40, 230, 3)
    img = top[None, None] * (1 - yy[..., None]) + bottom[None, None] * yy[..., None]

    dx, dy = rng.normal(0, 0.025), rng.normal(0, 0.02)  # small pose offsets (alignment jitter)
    cx, cy = 0.5 + dx, 0.52 + dy
    fw, fh = rng.uniform(0.23, 0.3), rng.uniform(0.3, 0.36)  # face half-width / half-height
    skin = _SKIN[rng.integers(len(_SKIN))] + rng.normal(0, 8, 3)
    hair = _HAIR[rng.integers(len(_HAIR))] + rng.normal(0, 10, 3)
    long_hair = rng.random() < 0.5

    # Shoulders / clothes.
    cloth = rng.uniform(20, 235, 3)
    img[_ellipse(yy, xx, 1.12, cx, 0.3, 0.42)] = cloth
    img[_ellipse(yy, xx, cy + fh * 0.95, cx, 0.12, fw * 0.45) & (yy > cy)] = skin * 0.9  # neck
    # Hair behind the face (long hair reaches the shoulders).
    if long_hair:
        img[_ellipse(yy, xx, cy + 0.08, cx, fh + 0.14, fw + 0.08)] = hair
    else:
        img[_ellipse(yy, xx, cy - 0.03, cx, fh + 0.05, fw + 0.05)] = hair
    face = _ellipse(yy, xx, cy, cx, fh, fw)
    img[face] = skin
    # Fringe: the hair cap covers the top of the face.
    fringe = rng.uniform(0.35, 0.6)
    img[face & (yy < cy - fh * fringe) | _ellipse(yy, xx, cy - fh * 0.9, cx, 0.1, fw * 0.95)] = hair

    # Eyes: white, iris, pupil; eyebrows.
    ey, sep = cy - fh * 0.12, fw * rng.uniform(0.38, 0.5)
    iris = _EYES[rng.integers(len(_EYES))]
    er = fw * rng.uniform(0.16, 0.22)
    for side in (-1, 1):
        ex = cx + side * sep
        img[_ellipse(yy, xx, ey, ex, er * 0.7, er)] = (245, 245, 240)
        img[_ellipse(yy, xx, ey, ex, er * 0.55, er * 0.55)] = iris
        img[_ellipse(yy, xx, ey, ex, er * 0.25, er * 0.25)] = (10, 10, 10)
        brow = _ellipse(yy, xx, ey - er * 1.5, ex, er * 0.25, er * 1.2)
        img[brow] = hair * 0.8
    # Nose (a slightly darker vertical ellipse), mouth (a smile: lower half of a ring).
    img[_ellipse(yy, xx, cy + fh * 0.18, cx, fh * 0.14, fw * 0.09)] = skin * 0.85
    my, mw = cy + fh * 0.52, fw * rng.uniform(0.3, 0.5)
    smile = rng.uniform(0.02, 0.07)
    ring = _ellipse(yy, xx, my - smile, cx, smile + 0.025, mw) & ~_ellipse(
        yy, xx, my - smile - 0.012, cx, smile + 0.01, mw * 0.92)
    lips = np.clip(skin * np.array([1.0, 0.55, 0.55]) + rng.normal(0, 10, 3), 0, 255)
    img[ring & (yy > my - smile)] = lips
    # Cheeks (blush) on some faces.
    if rng.random() < 0.4:
        for side in (-1, 1):
            img[_ellipse(yy, xx, cy + fh * 0.25, cx + side * fw * 0.6, fh * 0.1, fw * 0.15)] = \
                skin * 0.6 + np.array([230, 120, 120]) * 0.4

    # Box-filter down by the supersampling factor (anti-aliasing), round to uint8.
    img = img.reshape(resolution, _SUPERSAMPLE, resolution, _SUPERSAMPLE, 3).mean(axis=(1, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def ensure_demo_dataset(directory: str | os.PathLike, num_images: int = 256, resolution: int = 32,
                        seed: int = 0) -> pathlib.Path:
    """Generate the demo portrait folder (PNG files ``00000.png`` ...) once; return its path.

    Idempotent: when ``directory/demo_dataset.json`` records the same parameters and all files
    exist, nothing is written. A folder holding other files (no manifest) is refused rather than
    mixed with generated images. Raises ``ValueError`` on bad arguments.
    """
    from PIL import Image  # local import: Pillow is only needed when generating
    from tqdm import tqdm

    if num_images < 1:
        raise ValueError(f'demo dataset: num_images must be >= 1, got {num_images}')
    if resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f'demo dataset: resolution must be a power of two >= 4, got {resolution}')
    directory = pathlib.Path(directory)
    names = [f'{i:05d}.png' for i in range(num_images)]
    want = {'version': _VERSION, 'num_images': num_images, 'resolution': resolution, 'seed': seed}
    manifest = directory / MANIFEST
    if manifest.is_file():
        try:
            have = json.loads(manifest.read_text())
        except json.JSONDecodeError:
            have = {}
        complete = all((directory / n).is_file() for n in names)
        if isinstance(have, dict) and {k: have.get(k) for k in want} == want and complete:
            return directory
        # Stale demo folder (other parameters): remove only files we generated ourselves.
        for n in have.get('files', []) if isinstance(have, dict) else []:
            (directory / pathlib.Path(n).name).unlink(missing_ok=True)
        manifest.unlink()
    elif directory.is_dir() and any(directory.iterdir()):
        raise ValueError(f'{directory}: not empty and not a demo dataset (no {MANIFEST}); '
                         'choose another data.path')
    directory.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(tqdm(names, desc='demo dataset', unit='img', leave=False)):
        img = draw_face(np.random.default_rng([seed, i, resolution]), resolution)
        tmp = directory / (name + '.tmp')
        Image.fromarray(img).save(tmp, format='PNG')
        os.replace(tmp, directory / name)
    # The manifest is written last: its presence means the folder is complete.
    tmp = directory / (MANIFEST + '.tmp')
    tmp.write_text(json.dumps({**want, 'files': names}, indent=1))
    os.replace(tmp, manifest)
    return directory
