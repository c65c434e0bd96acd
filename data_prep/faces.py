"""Stage `faces`: detect faces (a detector set per kind: photo / painting), align, crop, 512x512 JPEG.

Per image, the kind's detectors run in order (``first_detector_only``: stop at the first one that
finds a face -- the same yield as running all of them, at a fraction of the time) on a copy scaled
down as far as the smallest face worth keeping allows; boxes of several detectors are merged (IoU /
containment NMS, the earlier detector wins). Each face is then aligned the FFHQ way
(``data_prep.align``): dlib's 68 landmarks on the face, the eye centres and mouth corners give an
oriented square, the crop is resampled to ``size`` with reflect + blur padding where the square
leaves the image. Faces whose landmarks are not plausible (drawn faces) fall back to MTCNN's own
five points when MTCNN found them, else to a square around the box (``expand``, ``shift_up``): the
summary says per kind how many faces each mode cropped. A face whose square is smaller than
``size / max_upscale`` source pixels is skipped: no crop is upscaled more than ``max_upscale``.

Crops are JPEG ``jpeg_quality`` next to a sidecar ``<crop>.json`` (the input's sidecar + ``face``:
box, detector, mode, square, ``source_side`` -- the square's side in source pixels -- the source's
format and JPEG quality, and the five points in crop coordinates / size), which dedup uses to keep
the crop cut from the best copy.
The default detector sets were chosen on measured yield (README / ``benchmarks/bench_data_prep.py
--compare-detectors``). Images are processed in worker processes (``workers``).
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np

from data_prep import align, pool
from data_prep.config import DataPrepError
from data_prep.dedup import jpeg_quality
from data_prep.detectors import merge_boxes, resolve_detectors
from data_prep.report import FileRecord, StageRun, load_sidecar, run_stage, write_sidecar

STAGE = 'faces'

DEFAULTS: dict = {
    # Detector sets per kind, tried in this order (with first_detector_only the first one that finds
    # a face decides; else all run and the earlier one's box wins where they overlap); detectors that
    # are not importable are skipped and named in the summary. Picked on measured yield (README
    # table, benchmarks/bench_data_prep.py --compare-detectors): MTCNN finds every real photo face,
    # dlib HOG + Haar the painted and drawn ones MTCNN misses, so both kinds hold all three. The
    # landmarks come from dlib's predictor whatever the detector, so the order is by cost: MTCNN
    # (TensorFlow, the slowest) last, for the faces the other two miss.
    'detectors': {
        'photo': ['dlib_hog', 'haar', 'mtcnn'],
        'painting': ['dlib_hog', 'haar', 'mtcnn'],
    },
    'first_detector_only': True,  # stop at the first detector that finds a face (False: merge all)
    'default_kind': 'painting',  # kind of images whose sidecar has none
    'align': 'landmarks',       # 'landmarks': FFHQ alignment (box mode when implausible); 'box': always box
    'expand': 1.6,              # box mode: crop side = expand * max(box w, h)
    'shift_up': 0.1,            # box mode: crop centre moves up by this fraction of the box height
    'size': 512,                # output resolution
    'max_upscale': 2.0,         # skip faces whose crop square is under size / max_upscale source px
    'min_size': None,           # absolute floor on the crop side in source px (None: size / max_upscale)
    'jpeg_quality': 95,
    'max_faces': 4,             # per image, largest first
    'detect_max_side': 1024,    # detection never runs on more than this (the landmarks use full size)
    'nms_iou': 0.3,             # merge boxes overlapping more than this ...
    'nms_contain': 0.6,         # ... or when this fraction of the smaller box lies in the larger
    'min_score': {'blazeface': 0.6, 'blazeface_short': 0.6, 'animeface': 0.5, 'dlib_hog': 0.3},
    'yunet_model': None,        # path to face_detection_yunet_*.onnx, enables 'yunet'
    'workers': 0,               # processes; 0 = os.cpu_count(); small inputs run in-process
}
VOLATILE = ('workers',)

# Smallest face (box side, px) each detector finds reliably: detection runs on a copy scaled so the
# smallest face worth keeping has this size (MTCNN's P-Net window is 12 px at min_face_size 20,
# dlib's HOG window 80 px). Unlisted detectors get _MIN_FACE_DEFAULT.
_MIN_FACE = {'mtcnn': 40, 'dlib_hog': 80, 'haar': 40, 'haar_alt2': 40, 'haar_profile': 40, 'lbp': 40}
_MIN_FACE_DEFAULT = 64
# FFHQ square side / detector box side: 1.8 for dlib's boxes, 1.75 Haar's, 1.5 MTCNN's (taller
# boxes); detect faces down to a box 2.5x smaller than the smallest square kept. (At 2.0 Haar's boxes
# from the smaller copy are too coarse a start for the landmarks: crops then disagree by 4%.)
_SQUARE_PER_BOX = 2.5


def min_square(cfg: dict) -> float:
    """Smallest crop square side (source px) that is kept."""
    return float(cfg['min_size']) if cfg['min_size'] else cfg['size'] / float(cfg['max_upscale'])


def _scaled(rgb: np.ndarray, scale: float, cache: dict) -> np.ndarray:
    if scale >= 1.0:
        return rgb
    key = round(scale, 4)
    if key not in cache:
        import cv2
        h, w = rgb.shape[:2]
        cache[key] = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return cache[key]


def detect_faces(rgb: np.ndarray, detectors, cfg: dict) -> list[dict]:
    """Merged face boxes [{box: [x0, y0, x1, y1], score, detector, points}] in source pixels, largest
    first; ``points`` (5, 2) when the detector gives landmarks (MTCNN), else None."""
    h, w = rgb.shape[:2]
    min_box = min_square(cfg) / _SQUARE_PER_BOX
    cache: dict = {}
    all_boxes, prio, names, pts = [], [], [], []
    for k, (name, fn) in enumerate(detectors):
        scale = min(1.0, _MIN_FACE.get(name, _MIN_FACE_DEFAULT) / max(min_box, 1.0), cfg['detect_max_side'] / max(h, w))
        small = _scaled(rgb, scale, cache)
        s = small.shape[1] / w
        b = fn(small)
        b = b[b[:, 4] >= cfg['min_score'].get(name, -np.inf)] if len(b) else b
        if not len(b):
            continue
        b = b.astype(np.float64)
        b[:, :4] /= s
        if b.shape[1] >= 15:
            b[:, 5:15] /= s
        for row in b:
            all_boxes.append(row[:5]); prio.append(k); names.append(name)
            pts.append(row[5:15].reshape(5, 2) if len(row) >= 15 else None)
        if cfg['first_detector_only']:
            break
    if not all_boxes:
        return []
    boxes = np.asarray(all_boxes)
    keep = merge_boxes(boxes, np.asarray(prio), cfg['nms_iou'], cfg['nms_contain'])
    faces = [{'box': [round(float(v), 1) for v in boxes[i, :4]], 'score': round(float(boxes[i, 4]), 4),
              'detector': names[i], 'points': pts[i]} for i in keep]
    faces.sort(key=lambda f: -(f['box'][2] - f['box'][0]) * (f['box'][3] - f['box'][1]))
    return faces


def face_square(rgb: np.ndarray, face: dict, cfg: dict) -> tuple[np.ndarray, str, str, np.ndarray | None]:
    """(crop square, mode, note, five points): mode 'landmarks' (note: 'dlib68', or the detector whose
    five points were used), or 'box' (note: why the landmarks were not used; points None)."""
    if cfg['align'] == 'landmarks':
        p5 = align.five_points(align.dlib_landmarks(rgb, face['box']))
        why = align.plausible(p5, face['box'])
        if why is None:
            return align.ffhq_quad(p5), 'landmarks', 'dlib68', p5
        if face.get('points') is not None and align.plausible(face['points'], face['box']) is None:
            return align.ffhq_quad(face['points']), 'landmarks', face['detector'], face['points']
        return align.box_quad(face['box'], cfg['expand'], cfg['shift_up']), 'box', why, None
    return align.box_quad(face['box'], cfg['expand'], cfg['shift_up']), 'box', 'align=box', None


def _out_stem(path: Path, input_dir: Path) -> str:
    rel = path.relative_to(input_dir).as_posix() if path.is_relative_to(input_dir) else str(path)
    return f'{path.stem}_{hashlib.sha1(rel.encode()).hexdigest()[:8]}'


def process_image(path: Path, input_dir: Path, output_dir: Path, cfg: dict) -> dict:
    """Detect, align, crop and save the faces of one image; returns its record as JSON. Never raises
    for a bad image."""
    from PIL import Image, ImageOps
    path = Path(path)
    side, warnings = load_sidecar(path)
    kind = str(side.get('kind') or cfg['default_kind'])
    if kind not in cfg['detectors']:
        kind = cfg['default_kind']
    base = {'kind': kind, 'outputs': [], **({'warnings': warnings} if warnings else {})}
    try:
        with Image.open(path) as im:
            source = {'source_format': im.format, 'source_mode': im.mode, 'source_jpeg_quality': jpeg_quality(im)}
            rgb = np.asarray(ImageOps.exif_transpose(im).convert('RGB'))
    except Exception as e:  # noqa: BLE001 -- any decode failure is a record
        return FileRecord(str(path), 'rejected', f'unreadable image: {str(e).splitlines()[0][:100] if str(e) else type(e).__name__}',
                          extra=base).to_json()
    detectors, _ = resolve_detectors(cfg['detectors'][kind], cfg['yunet_model'])
    faces = detect_faces(rgb, detectors, cfg)
    outputs, saved, small = [], [], []
    stem = _out_stem(path, input_dir)
    floor = min_square(cfg)
    for f in faces:
        if len(outputs) >= cfg['max_faces']:
            break
        quad, mode, note, pts = face_square(rgb, f, cfg)
        side_px = align.quad_side(quad)
        if side_px < floor:
            small.append(round(side_px))
            continue
        crop, m = align.extract(rgb, quad, cfg['size'])
        out = output_dir / f'{stem}_f{len(outputs)}.jpg'
        tmp = out.with_name(out.name + '.tmp')
        Image.fromarray(crop).save(tmp, format='JPEG', quality=int(cfg['jpeg_quality']))
        os.replace(tmp, out)
        face = {'box': f['box'], 'detector': f['detector'], 'score': f['score'], 'mode': mode,
                'landmarks_from' if mode == 'landmarks' else 'why_box': note,
                'quad': np.round(quad, 1).tolist(), 'source_side': round(side_px, 1), **source,
                'points': (np.round(align.apply_affine(m, pts) / cfg['size'], 4).tolist() if pts is not None else None)}
        write_sidecar(out, {**side, 'kind': kind, 'face': face, 'face_source': str(path)})
        outputs.append(str(out.resolve()))
        saved.append(face)
    extra = {**base, 'outputs': outputs, 'faces': saved, 'detected': len(faces)}
    if outputs:
        return FileRecord(str(path), 'kept', output=outputs[0], extra=extra).to_json()
    if small:
        why = (f'faces too small: largest crop {max(small)} px < {floor:.0f} px '
               f'(it would be upscaled more than {cfg["size"] / floor:.1f}x)')
    else:
        why = 'no face found'
    return FileRecord(str(path), 'rejected', why, extra=extra).to_json()


def _init_worker() -> None:
    """One thread per library in each worker: the pool already uses every core."""
    for k in ('OMP_NUM_THREADS', 'TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS'):
        os.environ[k] = '1'
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    import cv2
    cv2.setNumThreads(1)


def _work(args) -> dict:
    path, input_dir, output_dir, cfg = args
    return process_image(path, input_dir, output_dir, cfg)


def check_settings(cfg: dict) -> None:
    """Every kind needs at least one usable detector; the alignment mode must exist."""
    if cfg['align'] not in ('landmarks', 'box'):
        raise DataPrepError('faces settings', f"align {cfg['align']!r} must be 'landmarks' or 'box'")
    if cfg['default_kind'] not in cfg['detectors']:
        raise DataPrepError('faces settings', f"default_kind {cfg['default_kind']!r} has no detectors")
    for kind, names in cfg['detectors'].items():
        try:
            use, skipped = resolve_detectors(list(names), cfg['yunet_model'])
        except ValueError as e:
            raise DataPrepError('faces settings', str(e)) from None
        if not use:
            raise DataPrepError('faces settings', f'no face detector available for kind {kind!r}: {skipped}')
    if cfg['align'] == 'landmarks':
        try:
            align.predictor_path()
        except ImportError as e:
            raise DataPrepError('faces settings', f"align='landmarks' needs dlib's landmark model: {e}") from None


def process(run: StageRun) -> dict:
    """Crop the faces of every input without an up-to-date record; yield and alignment per kind."""
    cfg = run.settings
    todo = [p for p in run.inputs if run.up_to_date(p) is None]
    jobs = [(p, run.input_dir, run.output_dir, cfg) for p in todo]
    for job, row in run.work(_work, jobs, cfg['workers'], initializer=_init_worker):
        run.add(run.died(job[0], row, outputs=[]) if isinstance(row, pool.WorkerDied) else FileRecord.from_json(row))
    per: dict[str, dict] = {}
    for r in run.report.records():
        k = per.setdefault(str(r.extra.get('kind', '?')), {'images': 0, 'with_face': 0, 'faces': 0,
                                                         'aligned': 0, 'box': 0})
        k['images'] += 1
        n = len(r.extra.get('outputs') or [])
        k['with_face'] += n > 0
        k['faces'] += n
        for f in r.extra.get('faces') or []:
            k['aligned' if f.get('mode') == 'landmarks' else 'box'] += 1
    for k in per.values():
        k['yield'] = round(k['with_face'] / k['images'], 4) if k['images'] else None
    used = {kind: [n for n, _ in resolve_detectors(names, cfg['yunet_model'])[0]] for kind, names in cfg['detectors'].items()}
    skipped = {}
    for names in cfg['detectors'].values():
        skipped.update(resolve_detectors(names, cfg['yunet_model'])[1])
    return {'crops': sum(v['faces'] for v in per.values()), 'yield_per_kind': per,
            'detectors': used, 'unavailable_detectors': skipped}


def run(input_dir: Path, output_dir: Path, cfg: dict | None = None) -> dict:
    """Face crops of every input of input_dir into output_dir; summary with yield per kind."""
    return run_stage(sys.modules[__name__], input_dir, output_dir, cfg)
