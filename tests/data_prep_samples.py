"""Offline sample images for the data_prep tests and benchmarks (not a test module itself).

No face image can be downloaded here, so the material is: real photos that pip packages ship
(scikit-image's astronaut and LFW subset, matplotlib's Grace Hopper), drawn portraits generated
from a seed, painting-like versions of photos, and the reposts people make of a picture (mirrored
and resized, recompressed, cropped, rotated, colour-graded). ``benchmarks/`` imports this file by
putting ``tests/`` on ``sys.path``.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance, ImageOps


# ----------------------------------------------------------------------------------- real photos

def astronaut() -> np.ndarray:
    """scikit-image's astronaut (Eileen Collins), 512x512 RGB: one frontal face, x 180-270, y 70-170."""
    from skimage import data
    return data.astronaut()


def grace_hopper() -> np.ndarray:
    """matplotlib's sample photo of Grace Hopper, 600x512 RGB, one face."""
    import matplotlib.cbook as cb
    with Image.open(cb.get_sample_data('grace_hopper.jpg')) as im:
        return np.asarray(im.convert('RGB'))


def lfw_faces(n: int = 100, side: int = 120, pad: int = 70, nonfaces: bool = False) -> list[np.ndarray]:
    """The first ``n`` of scikit-image's 100 LFW face crops (25x25 grayscale, different photos), as RGB:
    upscaled to ``side`` and padded by ``pad`` with the edge colour, because the crops are so tight that
    detectors need context. ``nonfaces=True`` gives the subset's 100 face-free patches instead."""
    from skimage import data
    u8 = (data.lfw_subset() * 255).astype(np.uint8)
    u8 = u8[100:] if nonfaces else u8[:100]
    out = []
    for a in u8[:n]:
        g = np.asarray(Image.fromarray(a).resize((side, side), Image.BICUBIC))
        out.append(np.repeat(np.pad(g, pad, mode='edge')[..., None], 3, 2))
    return out


# ----------------------------------------------------------------------------------- drawn faces

def synthetic_painted_face(seed: int, size: int = 384, anime: bool = False, tilt: float = 30.0) -> np.ndarray:
    """A simple painted portrait (RGB uint8): painterly background, hair, skin-toned head with shading,
    eyes with iris/pupil/highlight, brows, nose shadow, lips, neck; brush-like noise and blur; then a
    random tilt (up to +-tilt degrees), scale and offset. With anime=True: bigger eyes, no nose,
    smaller mouth. Deterministic in seed."""
    import cv2
    rng = np.random.default_rng(seed)
    s = size
    bg = rng.uniform(30, 200, 3)
    img = np.zeros((s, s, 3), np.float32) + bg
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    img += ((xx / s - 0.5)[..., None] * rng.uniform(-60, 60, 3) + (yy / s - 0.5)[..., None] * rng.uniform(-60, 60, 3))
    for _ in range(30):  # background brush strokes
        c = tuple(float(v) for v in np.clip(bg + rng.normal(0, 35, 3), 0, 255))
        p0 = tuple(int(v) for v in rng.uniform(0, s, 2)); p1 = tuple(int(v) for v in rng.uniform(0, s, 2))
        cv2.line(img, p0, p1, c, int(rng.integers(3, 12)))
    cx, cy = s / 2 + rng.uniform(-0.05, 0.05) * s, s * rng.uniform(0.47, 0.53)
    fw, fh = s * rng.uniform(0.17, 0.21), s * rng.uniform(0.23, 0.27)
    skin = np.array([rng.uniform(170, 240), rng.uniform(120, 190), rng.uniform(90, 160)], np.float32)
    hair = rng.uniform(10, 160, 3).astype(np.float32)
    # hair mass behind the head, neck, head
    cv2.ellipse(img, (int(cx), int(cy - fh * 0.15)), (int(fw * 1.35), int(fh * 1.25)), 0, 0, 360,
                tuple(float(v) for v in hair), -1)
    cv2.rectangle(img, (int(cx - fw * 0.45), int(cy + fh * 0.6)), (int(cx + fw * 0.45), s), tuple(float(v) for v in skin * 0.85), -1)
    cv2.ellipse(img, (int(cx), int(cy)), (int(fw), int(fh)), 0, 0, 360, tuple(float(v) for v in skin), -1)
    # side shading on the head
    head = (((xx - cx) / fw) ** 2 + ((yy - cy) / fh) ** 2) < 1
    shade = np.clip(1.0 - 0.25 * ((xx - cx) / fw) * rng.choice([-1, 1]), 0.7, 1.15)
    img[head] *= shade[head, None]
    # fringe
    cv2.ellipse(img, (int(cx), int(cy - fh * 0.75)), (int(fw * 1.05), int(fh * 0.4)), 0, 180, 360,
                tuple(float(v) for v in hair), -1)
    ey = cy - fh * 0.12
    er = fw * (0.22 if anime else 0.16)
    for sx in (-1, 1):
        ex = cx + sx * fw * 0.42
        cv2.ellipse(img, (int(ex), int(ey)), (int(er * 1.25), int(er * (1.1 if anime else 0.6))), 0, 0, 360, (245, 245, 240), -1)
        iris = tuple(float(v) for v in rng.uniform(20, 140, 3))
        cv2.circle(img, (int(ex), int(ey)), int(er * (0.85 if anime else 0.55)), iris, -1)
        cv2.circle(img, (int(ex), int(ey)), int(er * 0.3), (15, 15, 15), -1)
        cv2.circle(img, (int(ex - er * 0.25), int(ey - er * 0.25)), max(1, int(er * 0.15)), (255, 255, 255), -1)
        cv2.ellipse(img, (int(ex), int(ey - er * 0.1)), (int(er * 1.3), int(er * (1.1 if anime else 0.65))), 0, 190, 350, (20, 15, 15), 2)
        cv2.line(img, (int(ex - er * 1.2), int(ey - er * 1.6)), (int(ex + er * 1.2), int(ey - er * 1.8)),
                 tuple(float(v) for v in hair * 0.6), max(2, int(er * 0.3)))
    if not anime:
        cv2.line(img, (int(cx), int(ey + er)), (int(cx - fw * 0.08), int(cy + fh * 0.3)), tuple(float(v) for v in skin * 0.7), 3)
        cv2.ellipse(img, (int(cx), int(cy + fh * 0.3)), (int(fw * 0.12), int(fh * 0.05)), 0, 0, 180, tuple(float(v) for v in skin * 0.6), -1)
    lips = (float(rng.uniform(150, 220)), float(rng.uniform(50, 100)), float(rng.uniform(60, 110)))
    my = cy + fh * (0.55 if not anime else 0.5)
    cv2.ellipse(img, (int(cx), int(my)), (int(fw * (0.32 if not anime else 0.15)), int(fh * 0.07)), 0, 0, 360, lips, -1)
    img += rng.normal(0, 4, img.shape).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 1.2)
    # portraits are rarely upright and centred: random in-plane tilt, scale and offset
    m = cv2.getRotationMatrix2D((s / 2, s / 2), float(rng.uniform(-tilt, tilt)), float(rng.uniform(0.6, 1.0)))
    m[:, 2] += rng.uniform(-0.12, 0.12, 2) * s
    img = cv2.warpAffine(img, m, (s, s), borderMode=cv2.BORDER_REFLECT)
    return np.clip(img, 0, 255).astype(np.uint8)


def paint_like(rgb: np.ndarray, seed: int = 0) -> np.ndarray:
    """A photo turned into a painting-like image (edge-preserving stylisation + colour quantisation):
    evaluation material for the painting detectors."""
    import cv2
    rng = np.random.default_rng(seed)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    st = cv2.stylization(bgr, sigma_s=float(rng.uniform(40, 80)), sigma_r=float(rng.uniform(0.3, 0.5)))
    q = (st // 24) * 24 + 12
    return cv2.cvtColor(q.astype(np.uint8), cv2.COLOR_BGR2RGB)


# ----------------------------------------------------------------------------------------- reposts

def _rotate_inscribed(im: Image.Image, degrees: float) -> Image.Image:
    """Rotate and crop to the largest axis-aligned rectangle without empty corners (how reposts look)."""
    w, h = im.size
    r = im.rotate(degrees, resample=Image.BICUBIC, expand=False)
    a = np.deg2rad(abs(degrees))
    # inscribed rectangle of the same aspect ratio inside the rotated w x h frame
    k = min(w, h) / (min(w, h) * np.cos(a) + max(w, h) * np.sin(a))
    cw, ch = int(w * k), int(h * k)
    return r.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch))


def _colour_grade(im: Image.Image) -> Image.Image:
    """A warm 'instagram' grade: per-channel curves (lift reds, cool shadows), +20% saturation, gamma."""
    x = np.asarray(im.convert('RGB'), np.float64) / 255.0
    x = x ** 0.9
    x[..., 0] = np.clip(x[..., 0] * 1.07 + 0.03, 0, 1)
    x[..., 2] = np.clip(x[..., 2] * 0.90 + 0.04 * (1 - x[..., 2]), 0, 1)
    out = Image.fromarray((x * 255).round().astype(np.uint8))
    return ImageEnhance.Color(out).enhance(1.2)


def _crop_5(im: Image.Image) -> Image.Image:
    """5% of each dimension cut away, unevenly (3% left, 2% right, 1% top, 4% bottom)."""
    w, h = im.size
    return im.crop((round(0.03 * w), round(0.01 * h), w - round(0.02 * w), h - round(0.04 * h)))


# name -> (edit, JPEG quality the repost is saved with)
REPOSTS = {
    'mirrored_resized': (lambda im: ImageOps.mirror(im).resize((im.width * 3 // 4, im.height * 3 // 4), Image.LANCZOS), 85),
    'resized': (lambda im: im.resize((im.width * 2 // 3, im.height * 2 // 3), Image.BICUBIC), 90),
    'recompressed_q40': (lambda im: im, 40),
    'cropped_5pct': (_crop_5, 88),
    'rotated_4deg': (lambda im: _rotate_inscribed(im, 4.0), 90),
    'colour_graded': (_colour_grade, 90),
}


def repost(rgb: np.ndarray, kind: str) -> bytes:
    """JPEG bytes of the ``kind`` repost (a key of REPOSTS) of an RGB image."""
    edit, quality = REPOSTS[kind]
    b = io.BytesIO()
    edit(Image.fromarray(rgb)).convert('RGB').save(b, 'JPEG', quality=quality)
    return b.getvalue()
