"""Face alignment the FFHQ way: landmarks -> oriented crop square -> padded, resampled crop.

FFHQ (Karras et al. 2019) crops every face from five points -- the eye centres and the mouth
corners -- so that the same face lands in the same place, at the same scale and upright, whatever
the picture around it. The square is centred a little below the eyes (``eye_avg + 0.1 *
eye_to_mouth``), its half-side is ``max(2.0 * |eye_to_eye|, 1.8 * |eye_to_mouth|)`` and it is
rotated along the eye line (corrected by the eye-to-mouth direction). Where the square leaves the
image, the image is extended by reflection and the extension blurred and faded towards the
image's median colour, instead of moving the crop off-centre.

Landmarks come from dlib's 68-point shape predictor (``shape_predictor_68_face_landmarks.dat``,
shipped by the ``face-recognition-models`` package) run on the detected box, then again on a box
derived from its own answer, so the result no longer depends on how the detector framed the face.
Faces whose landmarks are not plausible (drawn faces the predictor does not understand) are cropped
from their box instead (``box_quad``).
"""
from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np

# dlib's frontal detector box as a function of the 68 landmarks (medians over the 88 boxes it gives
# on skimage's astronaut, matplotlib's Grace Hopper and the LFW faces): centre = centre of the
# landmarks' bounding box + (0, _BOX_DY) * its height, side = _BOX_SIDE * its width.
_BOX_SIDE = 1.03
_BOX_DY = -0.105


def predictor_path() -> str:
    """Path of dlib's 68-point model inside the ``face-recognition-models`` package (not imported:
    its ``__init__`` needs ``pkg_resources``, which recent setuptools no longer ship)."""
    spec = importlib.util.find_spec('face_recognition_models')
    if spec is None or not spec.submodule_search_locations:
        raise ImportError('face-recognition-models is not installed (pip install face-recognition-models)')
    path = os.path.join(list(spec.submodule_search_locations)[0], 'models',
                        'shape_predictor_68_face_landmarks.dat')
    if not os.path.isfile(path):
        raise ImportError(f'{path}: dlib 68-point model missing')
    return path


@functools.lru_cache(maxsize=None)
def _predictor():
    import dlib
    return dlib.shape_predictor(predictor_path())


def dlib_landmarks(rgb: np.ndarray, box, passes: int = 2) -> np.ndarray:
    """(68, 2) landmarks of the face in ``box`` (x0, y0, x1, y1); after the first pass the box is
    re-derived from the landmarks (dlib's own framing), so any detector's box gives the same answer."""
    import dlib
    img = np.ascontiguousarray(rgb)
    x0, y0, x1, y1 = [float(v) for v in box[:4]]
    pts = None
    for _ in range(max(1, passes)):
        rect = dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1)))
        shape = _predictor()(img, rect)
        pts = np.array([[p.x, p.y] for p in shape.parts()], np.float64)
        x0, y0, x1, y1 = landmark_box(pts)
    return pts


def landmark_box(pts68: np.ndarray) -> tuple[float, float, float, float]:
    """The square box dlib's detector would give for a face with these 68 landmarks."""
    lo, hi = pts68.min(0), pts68.max(0)
    cx, cy = (lo + hi) / 2
    cy += _BOX_DY * (hi[1] - lo[1])
    half = _BOX_SIDE * (hi[0] - lo[0]) / 2
    return cx - half, cy - half, cx + half, cy + half


def five_points(pts68: np.ndarray) -> np.ndarray:
    """(5, 2): left eye centre, right eye centre, nose tip, left and right mouth corner (image left /
    right, the same order as MTCNN's)."""
    return np.stack([pts68[36:42].mean(0), pts68[42:48].mean(0), pts68[30], pts68[48], pts68[54]])


def plausible(pts5: np.ndarray, box) -> str | None:
    """None when five points look like a face in ``box``, else why not (the crop then uses the box)."""
    le, re, _, ml, mr = np.asarray(pts5, np.float64)
    bw = max(float(box[2] - box[0]), float(box[3] - box[1]), 1e-6)
    e2e = re - le
    e = np.hypot(*e2e)
    if not 0.2 * bw <= e <= 0.8 * bw:
        return f'eye distance {e / bw:.2f} of the box'
    e2m = (ml + mr) / 2 - (le + re) / 2
    m = np.hypot(*e2m)
    if not 0.5 * e <= m <= 1.8 * e:
        return f'eye-mouth distance {m / e:.2f} of the eye distance'
    # the mouth must lie below the eyes, roughly square to the eye line
    perp = np.array([-e2e[1], e2e[0]]) / e
    cos = float(np.dot(e2m, perp) / m)
    if cos < np.cos(np.deg2rad(35)):
        return f'mouth not below the eyes ({np.degrees(np.arccos(np.clip(cos, -1, 1))):.0f} degrees off)'
    if np.hypot(*(mr - ml)) > 1.5 * e:
        return 'mouth wider than 1.5 eye distances'
    return None


def ffhq_quad(pts5: np.ndarray) -> np.ndarray:
    """FFHQ's oriented crop square (4, 2): top-left, bottom-left, bottom-right, top-right corners in
    source pixels, from the eye centres and mouth corners."""
    le, re, _, ml, mr = np.asarray(pts5, np.float64)
    eye_avg = (le + re) / 2
    eye_to_eye = re - le
    eye_to_mouth = (ml + mr) / 2 - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])  # eye line, corrected by the mouth
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def box_quad(box, expand: float = 1.6, shift_up: float = 0.1) -> np.ndarray:
    """Upright square (same corner order as :func:`ffhq_quad`) around a face box without landmarks:
    side ``expand * max(w, h)``, centre moved up by ``shift_up * h`` (keeps the hair)."""
    x0, y0, x1, y1 = [float(v) for v in box[:4]]
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - shift_up * h
    r = expand * max(w, h) / 2
    return np.array([[cx - r, cy - r], [cx - r, cy + r], [cx + r, cy + r], [cx + r, cy - r]])


def quad_side(quad: np.ndarray) -> float:
    """Side length of a crop square in source pixels."""
    return float(np.hypot(*(np.asarray(quad)[3] - np.asarray(quad)[0])))


def extract(rgb: np.ndarray, quad: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``size`` x ``size`` crop of the square ``quad`` (see :func:`ffhq_quad`), and the 2x3 affine
    map from source pixels to crop pixels.

    As FFHQ: a source much larger than the crop is first reduced (area filter), the region around
    the square is cut out, and where the square leaves the image the image is extended by reflection,
    the extension blurred (sigma 2% of the square) and faded towards the median colour, so the crop
    stays centred on the face instead of shifting."""
    import cv2
    quad = np.asarray(quad, np.float64).copy()
    img = np.asarray(rgb)
    to_work = np.eye(3)  # source pixels -> working-image pixels
    qsize = quad_side(quad)
    shrink = int(np.floor(qsize / size * 0.5))
    if shrink > 1:
        h, w = img.shape[:2]
        img = cv2.resize(img, (max(1, round(w / shrink)), max(1, round(h / shrink))), interpolation=cv2.INTER_AREA)
        s = np.diag([img.shape[1] / w, img.shape[0] / h, 1.0])
        to_work = s @ to_work
        quad = quad * [s[0, 0], s[1, 1]]
        qsize = quad_side(quad)
    h, w = img.shape[:2]
    border = max(int(round(qsize * 0.1)), 3)
    lo, hi = np.floor(quad.min(0)).astype(int), np.ceil(quad.max(0)).astype(int)
    cx0, cy0 = max(lo[0] - border, 0), max(lo[1] - border, 0)
    cx1, cy1 = min(hi[0] + border, w), min(hi[1] + border, h)
    if cx1 <= cx0 or cy1 <= cy0:  # the square lies wholly outside the image
        cx0, cy0, cx1, cy1 = 0, 0, w, h
    img = img[cy0:cy1, cx0:cx1]
    shift = np.array([[1, 0, -cx0], [0, 1, -cy0], [0, 0, 1]], np.float64)
    to_work = shift @ to_work
    quad = quad - [cx0, cy0]
    h, w = img.shape[:2]
    pl = max(-(lo[0] - cx0) + border, 0)
    pt = max(-(lo[1] - cy0) + border, 0)
    pr = max((hi[0] - cx0) + border - w, 0)
    pb = max((hi[1] - cy0) + border - h, 0)
    if max(pl, pt, pr, pb) > border - 4:
        img = cv2.copyMakeBorder(np.ascontiguousarray(img), pt, pb, pl, pr, cv2.BORDER_REFLECT).astype(np.float32)
        hh, ww = img.shape[:2]
        yy, xx = np.ogrid[:hh, :ww]
        # 0 inside the original image, rising to 1 at the far edge of each padded side
        mask = np.maximum.reduce([
            np.broadcast_to(1.0 - xx / max(pl, 1e-6), (hh, ww)) * (pl > 0),
            np.broadcast_to(1.0 - (ww - 1 - xx) / max(pr, 1e-6), (hh, ww)) * (pr > 0),
            np.broadcast_to(1.0 - yy / max(pt, 1e-6), (hh, ww)) * (pt > 0),
            np.broadcast_to(1.0 - (hh - 1 - yy) / max(pb, 1e-6), (hh, ww)) * (pb > 0)])
        mask = np.clip(mask, 0.0, 1.0)[..., None].astype(np.float32)
        sigma = max(qsize * 0.02, 1.0)
        blur = cv2.GaussianBlur(img, (0, 0), sigma)
        img += (blur - img) * np.clip(mask * 3.0, 0.0, 1.0)
        img += (np.median(img.reshape(-1, 3), axis=0) - img) * mask
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        to_work = np.array([[1, 0, pl], [0, 1, pt], [0, 0, 1]], np.float64) @ to_work
        quad = quad + [pl, pt]
    # affine map of three corners (top-left, top-right, bottom-left) onto a supersampled square,
    # bilinear, then an area reduction to the output size (FFHQ: transform large, then antialias)
    ss = 2 * size
    m = cv2.getAffineTransform(np.float32([quad[0], quad[3], quad[1]]), np.float32([[0, 0], [ss, 0], [0, ss]]))
    big = cv2.warpAffine(np.ascontiguousarray(img), m, (ss, ss), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    out = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)
    full = np.diag([size / ss, size / ss, 1.0]) @ np.vstack([m, [0, 0, 1]]) @ to_work
    return out, full[:2]


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map (N, 2) points with a 2x3 affine matrix."""
    pts = np.asarray(pts, np.float64)
    return pts @ np.asarray(m)[:, :2].T + np.asarray(m)[:, 2]
