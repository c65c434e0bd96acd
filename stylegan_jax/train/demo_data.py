"""Built-in demo datasets: procedurally drawn portraits, generated locally (no download).

Two sets (``data.demo_set``), drawn by one portrait renderer so they share their geometry (a
front-facing, FFHQ-like aligned face), as a real transfer pair shares its subject matter:

* ``'portraits'``: the *source domain* (what configs/demo_pretrain.py trains the shipped demo
  model on): anime-like cartoon faces with flat colours, from random attributes (background
  gradient, skin tone, hair colour and style, eye colour, face shape, pose offset, smile).
* ``'elves'``: the *target domain* (what configs/demo.py fine-tunes on): one fantasy character,
  a pale elf with pointed ears, silver-blond long hair, green eyes and a green cloak, against
  forest and twilight backgrounds, in two kinds, alternating (even index photo, odd painting):
  ``photo`` (soft directional light on the face, blurred bokeh background, film grain, natural
  colours) and ``painting`` (posterised saturated palette, brush-stroke texture, dark outlines).
  The kinds are recorded in the manifest, so ``data.photo_ratio`` works as for a TFDS set.

Images are rendered at 4x the target resolution and box-filtered down, so edges are
anti-aliased. Every image depends only on ``(seed, index, resolution)`` and the set: asking for
more images later keeps the first ones identical. A manifest ``demo_dataset.json`` makes
generation idempotent.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Callable

import numpy as np

__all__ = ['ensure_demo_dataset', 'draw_face', 'draw_elf', 'draw_demo_image', 'read_kinds', 'MANIFEST',
           'DEMO_SETS', 'KINDS']

MANIFEST = 'demo_dataset.json'
DEMO_SETS = ('portraits', 'elves')
KINDS = ('painting', 'photo')  # the kind ids photo_ratio_mask expects: painting 0, photo 1
_SUPERSAMPLE = 4
_VERSION = 2  # bump when the drawing or the manifest changes so stale folders are regenerated

_SKIN = np.array([[255, 224, 196], [241, 194, 160], [224, 172, 130], [198, 134, 92],
                  [161, 102, 65], [110, 70, 45]], np.float32)
_HAIR = np.array([[20, 17, 15], [60, 40, 25], [110, 70, 35], [180, 130, 70], [230, 200, 130],
                  [160, 50, 30], [200, 200, 205], [60, 80, 160], [190, 80, 150]], np.float32)
_EYES = np.array([[70, 45, 25], [40, 90, 160], [60, 120, 70], [110, 110, 110], [20, 20, 20]],
                 np.float32)
# The elf: one character, so narrow palettes (pale skin, silver-blond hair, green eyes).
_ELF_SKIN = np.array([[244, 212, 188], [236, 200, 172], [248, 220, 198]], np.float32)
_ELF_HAIR = np.array([[226, 230, 242], [212, 218, 236], [236, 236, 240]], np.float32)
_ELF_EYES = np.array([[40, 175, 95], [60, 160, 120]], np.float32)
_ELF_CLOTH = np.array([[40, 95, 55], [30, 75, 70], [70, 105, 45]], np.float32)
_ELF_SKY = np.array([[[18, 52, 40], [92, 140, 72]],      # forest
                     [[30, 36, 78], [118, 92, 150]],     # twilight
                     [[56, 92, 62], [196, 186, 118]]],   # sunlit glade
                    np.float32)


@dataclasses.dataclass(frozen=True)
class _Palette:
    """Where a portrait's colours come from; each picker draws from ``rng`` in a fixed order."""
    background: Callable[[np.random.Generator, np.ndarray, np.ndarray], np.ndarray]
    skin: np.ndarray
    hair: np.ndarray
    eyes: np.ndarray
    cloth: Callable[[np.random.Generator], np.ndarray]
    always_long_hair: bool = False
    ears: bool = False
    hair_margin: float = 0.08  # how far long hair reaches past the face's sides


def _gradient_background(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Vertical gradient between two random colours."""
    top, bottom = rng.uniform(40, 230, 3), rng.uniform(40, 230, 3)
    return top[None, None] * (1 - yy[..., None]) + bottom[None, None] * yy[..., None]


def _elf_background(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A forest / twilight / glade gradient with soft light spots (leaves, fireflies, bokeh)."""
    top, bottom = _ELF_SKY[rng.integers(len(_ELF_SKY))] + rng.normal(0, 8, (2, 3))
    img = top[None, None] * (1 - yy[..., None]) + bottom[None, None] * yy[..., None]
    for _ in range(rng.integers(3, 7)):
        cy, cx, r = rng.uniform(0, 0.8), rng.uniform(0, 1), rng.uniform(0.03, 0.09)
        glow = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
        img = img + glow * (np.array([235, 240, 190]) - img) * rng.uniform(0.3, 0.7)
    return img


_PORTRAIT = _Palette(_gradient_background, _SKIN, _HAIR, _EYES, lambda rng: rng.uniform(20, 235, 3))
_ELF = _Palette(_elf_background, _ELF_SKIN, _ELF_HAIR, _ELF_EYES,
                lambda rng: _ELF_CLOTH[rng.integers(len(_ELF_CLOTH))] + rng.normal(0, 6, 3),
                always_long_hair=True, ears=True, hair_margin=0.03)  # hair tucked behind the ears

# Region labels of the drawing (the elf renderers shade, outline and texture by region).
_BG, _CLOTH, _NECK, _HAIR_L, _FACE, _EAR, _FEATURE = range(7)


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    """Boolean mask of an axis-aligned ellipse in unit coordinates."""
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _triangle(yy: np.ndarray, xx: np.ndarray, a: tuple, b: tuple, c: tuple) -> np.ndarray:
    """Boolean mask of the triangle with (y, x) corners a, b, c."""
    def side(p: tuple, q: tuple) -> np.ndarray:
        return (xx - q[1]) * (p[0] - q[0]) - (p[1] - q[1]) * (yy - q[0])
    d1, d2, d3 = side(a, b), side(b, c), side(c, a)
    return ~(((d1 < 0) | (d2 < 0) | (d3 < 0)) & ((d1 > 0) | (d2 > 0) | (d3 > 0)))


def _draw(rng: np.random.Generator, resolution: int, pal: _Palette) -> tuple[np.ndarray, np.ndarray, dict]:
    """A portrait at 4x ``resolution``: (float RGB image, region labels, geometry).

    The order of the random draws is part of the datasets' definition (the 'portraits' images are
    what the shipped demo model was trained on): add new draws only after the existing ones.
    """
    s = resolution * _SUPERSAMPLE
    # Unit coordinates: y down, x right, both in [0, 1] across the image.
    yy, xx = np.meshgrid((np.arange(s) + 0.5) / s, (np.arange(s) + 0.5) / s, indexing='ij')
    img = pal.background(rng, yy, xx)
    lab = np.full((s, s), _BG, np.uint8)

    def put(mask: np.ndarray, colour: np.ndarray, label: int) -> None:
        img[mask] = colour
        lab[mask] = label

    dx, dy = rng.normal(0, 0.025), rng.normal(0, 0.02)  # small pose offsets (alignment jitter)
    cx, cy = 0.5 + dx, 0.52 + dy
    fw, fh = rng.uniform(0.23, 0.3), rng.uniform(0.3, 0.36)  # face half-width / half-height
    skin = pal.skin[rng.integers(len(pal.skin))] + rng.normal(0, 8, 3)
    hair = pal.hair[rng.integers(len(pal.hair))] + rng.normal(0, 10, 3)
    long_hair = rng.random() < 0.5 or pal.always_long_hair

    # Shoulders / clothes.
    cloth = pal.cloth(rng)
    put(_ellipse(yy, xx, 1.12, cx, 0.3, 0.42), cloth, _CLOTH)
    put(_ellipse(yy, xx, cy + fh * 0.95, cx, 0.12, fw * 0.45) & (yy > cy), skin * 0.9, _NECK)
    # Hair behind the face (long hair reaches the shoulders).
    if long_hair:
        put(_ellipse(yy, xx, cy + 0.08, cx, fh + 0.14, fw + pal.hair_margin), hair, _HAIR_L)
    else:
        put(_ellipse(yy, xx, cy - 0.03, cx, fh + 0.05, fw + 0.05), hair, _HAIR_L)
    face = _ellipse(yy, xx, cy, cx, fh, fw)
    put(face, skin, _FACE)
    # Fringe: the hair cap covers the top of the face.
    fringe = rng.uniform(0.35, 0.6)
    put(face & (yy < cy - fh * fringe) | _ellipse(yy, xx, cy - fh * 0.9, cx, 0.1, fw * 0.95), hair, _HAIR_L)

    # Eyes: white, iris, pupil; eyebrows.
    ey, sep = cy - fh * 0.12, fw * rng.uniform(0.38, 0.5)
    iris = pal.eyes[rng.integers(len(pal.eyes))]
    er = fw * rng.uniform(0.16, 0.22)
    for side in (-1, 1):
        ex = cx + side * sep
        put(_ellipse(yy, xx, ey, ex, er * 0.7, er), np.array([245, 245, 240]), _FEATURE)
        put(_ellipse(yy, xx, ey, ex, er * 0.55, er * 0.55), iris, _FEATURE)
        put(_ellipse(yy, xx, ey, ex, er * 0.25, er * 0.25), np.array([10, 10, 10]), _FEATURE)
        put(_ellipse(yy, xx, ey - er * 1.5, ex, er * 0.25, er * 1.2), hair * 0.8, _FEATURE)
    # Nose (a slightly darker vertical ellipse), mouth (a smile: lower half of a ring).
    img[_ellipse(yy, xx, cy + fh * 0.18, cx, fh * 0.14, fw * 0.09)] = skin * 0.85
    my, mw = cy + fh * 0.52, fw * rng.uniform(0.3, 0.5)
    smile = rng.uniform(0.02, 0.07)
    ring = _ellipse(yy, xx, my - smile, cx, smile + 0.025, mw) & ~_ellipse(
        yy, xx, my - smile - 0.012, cx, smile + 0.01, mw * 0.92)
    lips = np.clip(skin * np.array([1.0, 0.55, 0.55]) + rng.normal(0, 10, 3), 0, 255)
    put(ring & (yy > my - smile), lips, _FEATURE)
    # Cheeks (blush) on some faces.
    if rng.random() < 0.4:
        for side in (-1, 1):
            img[_ellipse(yy, xx, cy + fh * 0.25, cx + side * fw * 0.6, fh * 0.1, fw * 0.15)] = \
                skin * 0.6 + np.array([230, 120, 120]) * 0.4
    if pal.ears:
        # Pointed ears through the hair: a triangle from the side of the face at eye height, its
        # tip up and out, and a darker inner ear.
        length, rise = rng.uniform(0.19, 0.23), rng.uniform(0.15, 0.2)
        for side in (-1, 1):
            base_x = cx + side * fw * 0.92
            a, b = (ey - 0.06, base_x), (ey + 0.1, base_x)
            tip = (ey - rise, cx + side * (fw + length))
            put(_triangle(yy, xx, a, b, tip) & ~face, skin * np.array([1.0, 0.92, 0.88]), _EAR)
            inner = (ey - rise * 0.6, cx + side * (fw + length * 0.6))
            img[_triangle(yy, xx, (ey - 0.02, base_x + side * 0.01), (ey + 0.05, base_x + side * 0.01), inner)
                & ~face] = skin * 0.8
    return img, lab, {'cx': cx, 'cy': cy, 'fw': fw, 'fh': fh, 'yy': yy, 'xx': xx}


def _downsample(img: np.ndarray, resolution: int) -> np.ndarray:
    """Box-filter the 4x image down (anti-aliasing) and round to uint8."""
    img = img.reshape(resolution, _SUPERSAMPLE, resolution, _SUPERSAMPLE, 3).mean(axis=(1, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter
    return gaussian_filter(img, (sigma, sigma, 0), mode='nearest')


def _render_photo(rng: np.random.Generator, img: np.ndarray, lab: np.ndarray, geo: dict) -> np.ndarray:
    """Photo look: defocused background, soft light from the upper left on skin and hair, natural
    (slightly desaturated) colours; grain is added after down-sampling."""
    s = img.shape[0]
    yy, xx, cx, cy, fw, fh = (geo[k] for k in ('yy', 'xx', 'cx', 'cy', 'fw', 'fh'))
    bg = _blur(img, s * 0.03)
    img = np.where((lab == _BG)[..., None], bg, _blur(img, s * 0.006))
    # Lambertian shading of an ellipsoid head; hair and clothes get a softer version.
    nx, ny = (xx - cx) / (fw * 1.25), (yy - cy) / (fh * 1.25)
    nz = np.sqrt(np.clip(1 - nx ** 2 - ny ** 2, 0, 1))
    light = np.array([-0.45, -0.55, 0.7]) / np.linalg.norm([-0.45, -0.55, 0.7])
    lambert = np.clip(nx * light[1] + ny * light[0] + nz * light[2], 0, 1)
    skin = np.isin(lab, (_FACE, _EAR, _NECK, _FEATURE))
    shade = np.where(skin, 0.55 + 0.55 * lambert, np.where(lab == _BG, 1.0, 0.75 + 0.35 * lambert))
    # Contact shadow of the ears on the hair behind them.
    near_ear = _blur((lab == _EAR).astype(np.float64)[..., None], s * 0.02)[..., 0] > 0.05
    shade = np.where(near_ear & (lab == _HAIR_L), shade * 0.7, shade)
    img = img * shade[..., None] * rng.uniform(0.92, 1.06)
    grey = img.mean(axis=-1, keepdims=True)
    return grey + 0.9 * (img - grey)


def _render_painting(rng: np.random.Generator, img: np.ndarray, lab: np.ndarray, geo: dict) -> np.ndarray:
    """Painting look: boosted saturation, brush-stroke texture, posterised colours, dark outlines."""
    from scipy.ndimage import zoom
    s = img.shape[0]
    grey = img.mean(axis=-1, keepdims=True)
    img = grey + 1.35 * (img - grey)
    # Brush strokes: coarse noise stretched along a random stroke direction.
    # Mostly brightness, with a little colour, as strokes of one paint mixed on the brush.
    shape = (s // 32, s // 4) if rng.random() < 0.5 else (s // 4, s // 32)
    coarse = rng.normal(0, 1, (*shape, 1)) + 0.3 * rng.normal(0, 1, (*shape, 3))
    strokes = zoom(coarse, (s / shape[0], s / shape[1], 1), order=1)
    img = img + 14 * strokes * np.where(lab == _FACE, 0.4, 1.0)[..., None]
    img = np.round(img / 36) * 36  # posterise: a few flat tones per region
    # Outlines where the region changes (about one output pixel wide), in dark umber.
    edge = np.zeros(lab.shape, bool)
    for shift in ((0, 3), (3, 0)):
        edge |= lab != np.roll(lab, shift, axis=(0, 1))
    img[edge & (lab != _BG)] = img[edge & (lab != _BG)] * 0.35 + np.array([40, 22, 12]) * 0.65
    # A warm glaze.
    return img * np.array([1.06, 1.0, 0.9]) + np.array([12, 6, 0])


def draw_face(rng: np.random.Generator, resolution: int) -> np.ndarray:
    """One source-domain portrait as uint8 [resolution, resolution, 3], attributes drawn from ``rng``."""
    return _downsample(_draw(rng, resolution, _PORTRAIT)[0], resolution)


def draw_elf(rng: np.random.Generator, resolution: int, kind: str) -> np.ndarray:
    """One target-domain elf portrait, ``kind`` 'photo' or 'painting', as uint8 [R, R, 3]."""
    if kind not in KINDS:
        raise ValueError(f'demo dataset: kind must be one of {", ".join(KINDS)}, got {kind!r}')
    img, lab, geo = _draw(rng, resolution, _ELF)
    render = _render_photo if kind == 'photo' else _render_painting
    out = np.clip(render(rng, img, lab, geo), 0, 255).reshape(
        resolution, _SUPERSAMPLE, resolution, _SUPERSAMPLE, 3).mean(axis=(1, 3))
    if kind == 'photo':
        out = out + rng.normal(0, 4, out.shape)  # film grain at the output resolution
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def draw_demo_image(demo_set: str, seed: int, index: int, resolution: int) -> tuple[np.ndarray, str | None]:
    """(image, kind) of image ``index`` of a demo set; kind is None for the 'portraits' set."""
    rng = np.random.default_rng([seed, index, resolution])
    if demo_set == 'portraits':
        return draw_face(rng, resolution), None
    if demo_set == 'elves':
        kind = 'photo' if index % 2 == 0 else 'painting'
        return draw_elf(rng, resolution, kind), kind
    raise ValueError(f"data.demo_set must be one of {', '.join(map(repr, DEMO_SETS))}, got {demo_set!r}")


def read_kinds(directory: str | os.PathLike) -> dict[str, str] | None:
    """{file name: 'photo' | 'painting'} from a demo folder's manifest; None when it records no kinds."""
    try:
        have = json.loads((pathlib.Path(directory) / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    kinds = have.get('kinds') if isinstance(have, dict) else None
    return dict(zip(have.get('files', []), kinds)) if kinds else None


def ensure_demo_dataset(directory: str | os.PathLike, num_images: int = 256, resolution: int = 32,
                        seed: int = 0, demo_set: str = 'portraits') -> pathlib.Path:
    """Generate a demo folder (PNG files ``00000.png`` ...) once; return its path.

    Idempotent: when ``directory/demo_dataset.json`` records the same parameters and all files
    exist, nothing is written. A folder holding other files (no manifest) is refused rather than
    mixed with generated images. Raises ``ValueError`` on bad arguments.
    """
    from PIL import Image  # local import: Pillow is only needed when generating
    from tqdm import tqdm

    if demo_set not in DEMO_SETS:
        raise ValueError(f"data.demo_set must be one of {', '.join(map(repr, DEMO_SETS))}, got {demo_set!r}")
    if num_images < 1:
        raise ValueError(f'demo dataset: num_images must be >= 1, got {num_images}')
    if resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f'demo dataset: resolution must be a power of two >= 4, got {resolution}')
    directory = pathlib.Path(directory)
    names = [f'{i:05d}.png' for i in range(num_images)]
    want = {'version': _VERSION, 'demo_set': demo_set, 'num_images': num_images, 'resolution': resolution,
            'seed': seed}
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
    kinds = []
    for i, name in enumerate(tqdm(names, desc=f'demo dataset ({demo_set})', unit='img', leave=False)):
        img, kind = draw_demo_image(demo_set, seed, i, resolution)
        kinds.append(kind)
        tmp = directory / (name + '.tmp')
        Image.fromarray(img).save(tmp, format='PNG')
        os.replace(tmp, directory / name)
    # The manifest is written last: its presence means the folder is complete.
    record = {**want, 'files': names}
    if demo_set != 'portraits':
        record['kinds'] = kinds
    tmp = directory / (MANIFEST + '.tmp')
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, manifest)
    return directory
