"""data_prep.faces / align / detectors: detection on real (scikit-image / matplotlib sample) and drawn
faces, FFHQ alignment (the same face in the same place whatever the detector, upright, padded at image
edges, the same across reposts), the plain-box fallback, the size floor relative to the output, and
the stage (crops, sidecars, yield and alignment mode per kind, resume)."""
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import data_prep_samples as S
from data_prep import align, detectors, faces

# The astronaut's (Eileen Collins) face in skimage.data.astronaut() spans roughly x 180-270, y 70-170.
ASTRO_FACE = (180, 70, 270, 170)
TOL = 0.02   # landmark agreement: mean distance of the five points, as a fraction of the crop size


def _disagreement(a, b):
    """(mean, max) distance between two sets of five points in crop units."""
    d = np.hypot(*(np.asarray(a) - np.asarray(b)).T)
    return float(d.mean()), float(d.max())


def _centre_in(box, region):
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return region[0] <= cx <= region[2] and region[1] <= cy <= region[3]


def _big_astronaut():
    return np.asarray(Image.fromarray(S.astronaut()).resize((1024, 1024), Image.LANCZOS))


def _crop_points(rgb, dets=('mtcnn', 'dlib_hog', 'haar'), cfg=None, detector_points=False):
    """Aligned crop of the largest face, and the five points found again on that crop (dlib on the
    crop itself, so the check does not reuse the numbers the crop was made from)."""
    cfg = {**faces.DEFAULTS, **(cfg or {})}
    f = faces.detect_faces(rgb, detectors.resolve_detectors(list(dets))[0], cfg)[0]
    if detector_points:
        quad = align.ffhq_quad(f['points'])
    else:
        quad = faces.face_square(rgb, f, cfg)[0]
    crop, _ = align.extract(rgb, quad, cfg['size'])
    g = faces.detect_faces(crop, detectors.resolve_detectors(['dlib_hog', 'haar'])[0],
                           {**cfg, 'max_upscale': 8.0})[0]
    return crop, align.five_points(align.dlib_landmarks(crop, g['box'])) / cfg['size'], f


# ------------------------------------------------------------------------------------------- geometry

def test_ffhq_quad_geometry():
    # eyes 40 px apart, mouth 40 px below: half-side max(2 * 40, 1.8 * 40) = 80, centre 0.1 below the eyes
    pts = np.array([[100, 100], [140, 100], [120, 120], [105, 140], [135, 140]], float)
    q = align.ffhq_quad(pts)
    np.testing.assert_allclose(q, [[40, 24], [40, 184], [200, 184], [200, 24]])
    assert align.quad_side(q) == pytest.approx(160)
    # the same face turned by 30 degrees: the square turns with it, same size, same centre offset
    t = np.deg2rad(30)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    q2 = align.ffhq_quad((pts - 120) @ rot.T + 120)
    np.testing.assert_allclose(q2, (q - 120) @ rot.T + 120, atol=1e-9)
    np.testing.assert_allclose(align.box_quad((75, 75, 125, 125), 1.6, 0.1),
                               [[60, 55], [60, 135], [140, 135], [140, 55]])


def test_plausible_landmarks():
    box = (80, 60, 160, 160)
    good = np.array([[100, 100], [140, 100], [120, 120], [105, 140], [135, 140]], float)
    assert align.plausible(good, box) is None
    assert 'eye distance' in align.plausible(good * [0.1, 1] + [110, 0], box)          # eyes on top of each other
    upside = good.copy()
    upside[3:, 1] = 60
    assert 'mouth not below' in align.plausible(upside, box)


def test_extract_maps_the_square_and_pads_instead_of_shifting():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    quad = np.array([[100, 50], [100, 250], [300, 250], [300, 50]], float)   # inside: a plain crop
    out, m = align.extract(img, quad, 100)
    ref = np.asarray(Image.fromarray(img[50:250, 100:300]).resize((100, 100), Image.BOX), float)
    assert np.abs(out.astype(float) - ref).mean() < 12
    np.testing.assert_allclose(align.apply_affine(m, quad[[0, 3, 1]]), [[0, 0], [100, 0], [0, 100]], atol=1e-6)
    # a square hanging over the top-left corner: the image is not shifted under it (its pixel
    # (0, 0) lands where the map says) and the padding is smooth (blurred reflection)
    quad = np.array([[-100, -100], [-100, 100], [100, 100], [100, -100]], float)
    out, m = align.extract(img, quad, 100)
    x, y = align.apply_affine(m, [[0, 0]])[0]
    assert (x, y) == pytest.approx((50, 50), abs=0.6)
    inside = out[55:, 55:].astype(float)
    pad = out[:40, :40].astype(float)
    assert pad.std() < inside.std() / 3


# ------------------------------------------------------------------------------------------- detectors

def test_haar_finds_the_astronaut():
    b = detectors.detect_haar(S.astronaut())
    assert len(b) >= 1 and _centre_in(b[0], ASTRO_FACE)
    assert len(detectors.detect_haar(np.full((300, 300, 3), 120, np.uint8))) == 0


def test_availability_and_defaults_installed():
    av = detectors.available_detectors()
    assert av['haar'] is None and av['yunet'] and 'onnx' in av['yunet']
    # the defaults are install_requires (setup.cfg): none may be silently skipped on a clean install
    for kind, names in faces.DEFAULTS['detectors'].items():
        for n in names:
            assert av[n] is None, (kind, n, av[n])
    assert Path(align.predictor_path()).name == 'shape_predictor_68_face_landmarks.dat'


@pytest.mark.parametrize('name', ['mtcnn', 'dlib_hog'])
def test_learned_detectors_on_real_faces(name):
    def det(img):
        b = detectors.DETECTORS[name](img)
        return b[b[:, 4] >= faces.DEFAULTS['min_score'].get(name, -np.inf)]
    b = det(S.astronaut())
    assert len(b) == 1 and _centre_in(b[0], ASTRO_FACE)
    w, h = b[0, 2] - b[0, 0], b[0, 3] - b[0, 1]
    assert 60 < w < 140 and 60 < h < 140
    assert len(det(S.grace_hopper())) == 1
    from skimage import data
    assert len(det(data.coffee())) == 0
    if name == 'mtcnn':   # five landmarks: eyes above the nose above the mouth, left left of right
        p = b[0, 5:15].reshape(5, 2)
        assert p[0, 0] < p[1, 0] and p[3, 0] < p[4, 0] and p[:2, 1].max() < p[2, 1] < p[3:, 1].min()


def test_drawn_faces_found_by_painting_set():
    use, _ = detectors.resolve_detectors(faces.DEFAULTS['detectors']['painting'])
    found = sum(bool(faces.detect_faces(S.synthetic_painted_face(s, 640), use, faces.DEFAULTS)) for s in range(6))
    assert found >= 5


# ------------------------------------------------------------------------------------------- alignment

def test_same_face_same_place_whatever_the_detector():
    """Boxes of different detectors frame a face differently (sizes differ by tens of percent); the
    aligned crops put the eyes, nose and mouth in the same place (within 2% of the crop)."""
    for rgb in (_big_astronaut(), S.grace_hopper()):
        runs = {d: _crop_points(rgb, (d,)) for d in ('mtcnn', 'dlib_hog', 'haar')}
        sides = [r[2]['box'][2] - r[2]['box'][0] for r in runs.values()]
        assert max(sides) / min(sides) > 1.05                     # the boxes really differ
        ref = runs['mtcnn'][1]
        for d, (_, pts, _) in runs.items():
            mean, worst = _disagreement(pts, ref)
            assert mean < TOL and worst < 1.5 * TOL, d
        # MTCNN's own five points (the fallback for faces dlib does not understand) agree too
        _, pts, _ = _crop_points(rgb, ('mtcnn',), detector_points=True)
        assert _disagreement(pts, ref)[0] < 1.5 * TOL


def test_tilted_face_comes_out_upright():
    rgb = S.grace_hopper()
    _, upright, _ = _crop_points(rgb)
    tilted = np.asarray(Image.fromarray(rgb).rotate(25, resample=Image.BICUBIC, expand=True))
    _, pts, _ = _crop_points(tilted)
    assert abs(pts[0, 1] - pts[1, 1]) < 0.015                      # eyes level (25 degrees: ~0.1)
    assert _disagreement(pts, upright)[0] < TOL


@pytest.mark.parametrize('kind', list(S.REPOSTS))
def test_reposts_align_to_the_same_place(kind):
    """The agreement the README reports, on one photo: the face in a repost's crop lies where it lies
    in the original's crop (mirrored reposts mirrored back)."""
    rgb = S.grace_hopper()
    _, ref, _ = _crop_points(rgb)
    rp = np.asarray(Image.open(io.BytesIO(S.repost(rgb, kind))).convert('RGB'))
    _, pts, _ = _crop_points(rp)
    if kind.startswith('mirrored'):
        pts = pts[[1, 0, 2, 4, 3]] * [-1, 1] + [1, 0]
    mean, worst = _disagreement(pts, ref)
    assert mean < TOL and worst < 1.5 * TOL


# ---------------------------------------------------------------------------------------------- stage

@pytest.fixture(scope='module')
def face_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('faces_in')
    Image.fromarray(_big_astronaut()).save(d / 'astro.jpg', quality=95)
    json.dump({'kind': 'photo', 'source_url': 'http://x/astro'}, open(d / 'astro.jpg.json', 'w'))
    Image.fromarray(S.astronaut()).save(d / 'astro_small.png')     # face square 173 px: 2.96x for 512
    json.dump({'kind': 'photo'}, open(d / 'astro_small.png.json', 'w'))
    Image.fromarray(S.grace_hopper()).save(d / 'grace.jpg', quality=95)
    json.dump({'kind': 'photo'}, open(d / 'grace.jpg.json', 'w'))
    for i in range(2):
        Image.fromarray(S.synthetic_painted_face(i, size=640)).save(d / f'drawn{i}.png')
        json.dump({'kind': 'painting'}, open(d / f'drawn{i}.png.json', 'w'))
    from skimage import data
    Image.fromarray(data.coffee()).save(d / 'coffee.jpg')  # painting by default_kind, no face
    (d / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 broken')
    return d


def test_stage(face_dir, tmp_path):
    out = tmp_path / 'out'
    s = faces.run(face_dir, out, {'workers': 1})
    rep = json.loads((out / 'report.json').read_text())
    by = {Path(r['path']).name: r for r in rep['files']}
    assert by['astro.jpg']['status'] == 'kept' and by['grace.jpg']['status'] == 'kept'
    assert by['coffee.jpg']['status'] == 'rejected' and by['coffee.jpg']['reason'] == 'no face found'
    small = by['astro_small.png']
    assert small['status'] == 'rejected' and 'faces too small: largest crop 17' in small['reason']
    assert 'upscaled more than 2.0x' in small['reason']
    assert by['broken.jpg']['status'] == 'rejected' and 'unreadable' in by['broken.jpg']['reason']
    crop = Path(by['astro.jpg']['output'])
    with Image.open(crop) as im:
        assert im.format == 'JPEG' and im.size == (512, 512) and im.mode == 'RGB'
    side = json.loads(Path(str(crop) + '.json').read_text())
    assert side['kind'] == 'photo' and side['source_url'] == 'http://x/astro'
    face = side['face']
    assert face['mode'] == 'landmarks' and face['landmarks_from'] == 'dlib68'
    assert _centre_in([v / 2 for v in face['box']], ASTRO_FACE)
    assert face['source_side'] == pytest.approx(2 * 173, rel=0.05)
    le, re = face['points'][:2]                                    # FFHQ places the eyes here
    assert le == pytest.approx([0.375, 0.48], abs=0.02) and re == pytest.approx([0.625, 0.48], abs=0.02)
    ypk = s['yield_per_kind']
    assert ypk['photo']['images'] == 3 and ypk['photo']['with_face'] == 2 and ypk['photo']['aligned'] >= 2
    assert ypk['painting']['images'] == 4 and ypk['painting']['with_face'] == 2
    assert ypk['painting']['aligned'] + ypk['painting']['box'] == ypk['painting']['faces']
    assert (out / 'report' / 'kept.png').is_file()
    # resume: nothing recomputed, crops untouched
    mtime = crop.stat().st_mtime_ns
    s2 = faces.run(face_dir, out, {'workers': 1})
    assert crop.stat().st_mtime_ns == mtime and s2['yield_per_kind'] == ypk and s2['processed_now'] == 0
    # the size floor is relative to the output: at 256 px the small astronaut is kept (1.5x)
    s3 = faces.run(face_dir, out, {'workers': 1, 'size': 256})
    assert s3['processed_now'] == 7 and s3['yield_per_kind']['photo']['with_face'] == 3
    with Image.open(json.loads((out / 'report.json').read_text())['files'][0]['output']) as im:
        assert im.size == (256, 256)


def test_box_mode_when_landmarks_are_not_plausible(face_dir, tmp_path, monkeypatch):
    """Faces the landmark model does not understand (here: it is made to answer nonsense) are cropped
    from their box, and the summary says so per kind; align='box' does that for every face."""
    def nonsense(rgb, box, passes=2):
        x0, y0 = box[0], box[1]
        return np.tile([[x0 + 1, y0 + 1]], (68, 1)).astype(float)
    monkeypatch.setattr(align, 'dlib_landmarks', nonsense)
    s = faces.run(face_dir, tmp_path / 'out', {'workers': 1, 'detectors': {'photo': ['haar'], 'painting': ['haar']}})
    assert s['yield_per_kind']['photo']['box'] >= 2 and s['yield_per_kind']['photo']['aligned'] == 0
    rows = json.loads((tmp_path / 'out' / 'report.json').read_text())['files']
    face = next(r for r in rows if Path(r['path']).name == 'grace.jpg')['extra']['faces'][0]
    assert face['mode'] == 'box' and 'eye distance' in face['why_box']
    monkeypatch.undo()
    s = faces.run(face_dir, tmp_path / 'out2', {'workers': 1, 'align': 'box'})
    assert s['yield_per_kind']['photo']['aligned'] == 0 and s['yield_per_kind']['photo']['box'] >= 2
