"""data_prep.dedup: hashes, the exact pair search at any size, clusters around a representative (no
chaining), the colour check, which copy is kept, and the unique / dedup stages on generated copies and
on reposts of real photos."""
import json
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from data_prep import dedup


def _random_codes(rng, n):
    return rng.integers(0, 2 ** 63, n, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, n, dtype=np.uint64)


def _flip_bits(x, k, rng):
    for b in rng.choice(64, k, replace=False):
        x ^= 1 << int(b)
    return x


def _reference_pairs(p, d, pf, df, tp, td):
    """Independent all-pairs reference with Python ints."""
    p, d, pf, df = ([int(v) for v in a] for a in (p, d, pf, df))
    ham = lambda a, b: bin(a ^ b).count('1')  # noqa: E731
    out = set()
    for i in range(len(p)):
        for j in range(i + 1, len(p)):
            if (ham(p[i], p[j]) <= tp and ham(d[i], d[j]) <= td) or \
               (ham(p[i], pf[j]) <= tp and ham(d[i], df[j]) <= td) or \
               (ham(pf[i], p[j]) <= tp and ham(df[i], d[j]) <= td):
                out.add((i, j))
    return out


@pytest.fixture(scope='module')
def planted():
    """250 random hash sets with pairs planted at pHash distances 0..12 (some mirrored)."""
    rng = np.random.default_rng(1)
    n = 250
    p, d, pf, df = (_random_codes(rng, n) for _ in range(4))
    p, d, pf, df = ([int(v) for v in a] for a in (p, d, pf, df))
    for t, (i, j) in enumerate(rng.permutation(n).reshape(-1, 2)[:60]):
        k = t % 13
        if t % 4 == 3:  # j is a mirrored copy of i: its direct hash is near i's flipped hash
            p[j], d[j] = _flip_bits(pf[i], k, rng), _flip_bits(df[i], 2, rng)
            pf[j], df[j] = _flip_bits(p[i], k, rng), _flip_bits(d[i], 2, rng)
        else:
            p[j], d[j] = _flip_bits(p[i], k, rng), _flip_bits(d[i], 2, rng)
    return tuple(np.array(a, np.uint64) for a in (p, d, pf, df))


def _as_set(pairs):
    return set(map(tuple, np.asarray(pairs).tolist()))


def test_brute_force_matches_reference(planted):
    ref = _reference_pairs(*planted, 10, 20)
    assert len(ref) >= 35  # planted pairs at distance <= 10 (plus nothing random: random pairs are ~32 apart)
    assert _as_set(dedup.find_pairs(*planted, phash_threshold=10, dhash_threshold=20)) == ref


def test_multi_index_search_is_exact(planted):
    """The index (used above brute_force_max) finds exactly what brute force finds, at the threshold."""
    for tp in (10, 6):
        ref = _reference_pairs(*planted, tp, 20)
        got = _as_set(dedup.find_pairs(*planted, phash_threshold=tp, dhash_threshold=20, brute_force_max=0, threads=2))
        assert got == ref, tp


def test_identical_flood_and_no_mirror():
    """Many identical hashes collapse to one cluster cheaply; mirror=False ignores flipped hashes."""
    rng = np.random.default_rng(2)
    p, d = _random_codes(rng, 300), _random_codes(rng, 300)
    p[:200], d[:200] = p[0], d[0]
    pairs = dedup.find_pairs(p, d, mirror=False, brute_force_max=0, phash_threshold=6)
    rep = dedup.representative_clusters(300, pairs, np.arange(300)[::-1], dedup.identity_classes(p, d))
    assert set(rep[:200].tolist()) == {199} and len(set(rep[200:].tolist())) == 100   # the best of the 200


def test_clusters_are_around_a_representative_not_chains():
    """a~b, b~c, c~d but a and c are far apart: connected components would make one cluster of four;
    around representatives, the best (a) takes b, and c (not within reach of a) starts its own."""
    rep = dedup.representative_clusters(4, np.array([[0, 1], [1, 2], [2, 3]]), np.array([0, 1, 2, 3]))
    assert rep.tolist() == [0, 0, 2, 2]
    rep = dedup.representative_clusters(4, np.array([[0, 1], [1, 2], [2, 3]]), np.array([1, 0, 2, 3]))
    assert rep.tolist() == [1, 1, 1, 3]            # b is best: it takes its neighbours a and c


def test_hash_bits_match_imagehash_hex():
    rng = np.random.default_rng(3)
    im = Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8))
    h = dedup.hash_image(im)
    assert len(h['colour']) == 64 and dedup.colour_array([h['colour']]).shape == (1, 4, 4, 2)
    assert h['phash'] == int(str(imagehash.phash(im)), 16)
    assert h['dhash'] == int(str(imagehash.dhash(im)), 16)
    assert h['phash_flip'] == int(str(imagehash.phash(ImageOps.mirror(im))), 16)
    a, b = np.array([0b1011, 2 ** 64 - 1], np.uint64), np.array([0b0001, 0], np.uint64)
    assert dedup.hamming(a, b).tolist() == [2, 64]


def test_rank_prefers_source_pixels_then_quality_then_name():
    order = dedup.rank_order([100, 400, 400, 9, 9], [101, 40, 95, 0, 0], ['a', 'b', 'c', 'y', 'x'])
    assert order.tolist() == [2, 1, 0, 4, 3]
    # a few pixels more do not beat a better encoding (a crop from a slightly rotated repost)
    assert dedup.rank_order([202500, 203401], [101, 90], ['orig', 'repost']).tolist() == [0, 1]
    assert dedup.rank_order([202500, 112500], [90, 101], ['big', 'small']).tolist() == [0, 1]
    assert dedup.quality_rank('PNG', 'RGB', None) > dedup.quality_rank('JPEG', 'RGB', 95) > \
        dedup.quality_rank('JPEG', 'RGB', 40) > dedup.quality_rank('PNG', 'P', None) == dedup.quality_rank('GIF', 'P', None)


def test_jpeg_quality_estimate():
    import io
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    for q in (40, 75, 90, 95):
        b = io.BytesIO()
        im.save(b, 'JPEG', quality=q)
        assert dedup.jpeg_quality(Image.open(b)) == q
    b = io.BytesIO()
    im.save(b, 'PNG')
    assert dedup.jpeg_quality(Image.open(b)) is None


def _scene(rng, size=256):
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    img = np.zeros((size, size, 3)) + rng.uniform(40, 200, 3)
    img += (xx / size)[..., None] * rng.uniform(-80, 80, 3) + (yy / size)[..., None] * rng.uniform(-80, 80, 3)
    for _ in range(rng.integers(4, 8)):
        cy, cx, ry, rx = rng.uniform(0, size, 2).tolist() + rng.uniform(15, 100, 2).tolist()
        m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        img[m] = img[m] * 0.3 + rng.uniform(0, 255, 3) * 0.7
    img += rng.normal(0, 5, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


EDITS = {
    'reencoded': lambda im: im,
    'resized': lambda im: im.resize((190, 190), Image.LANCZOS),
    'cropped': lambda im: im.crop((5, 5, 251, 251)),            # 2% each side
    'recoloured': lambda im: ImageEnhance.Color(ImageEnhance.Brightness(im).enhance(0.9)).enhance(1.3),
    'mirrored': ImageOps.mirror,
    'mirrored_resized': lambda im: ImageOps.mirror(im).resize((200, 200), Image.BILINEAR),
}


@pytest.fixture()
def copies(tmp_path):
    rng = np.random.default_rng(5)
    src = tmp_path / 'in'
    (src / 'sub').mkdir(parents=True)
    expect = {}
    originals = []
    for i in range(14):
        name = f'orig_{i:02d}.jpg'
        im = _scene(rng)
        im.save(src / name, quality=95)
        json.dump({'kind': 'painting' if i % 2 else 'photo', 'source_url': f'http://x/{i}'},
                  open(src / (name + '.json'), 'w'))
        originals.append((name, im))
    for k, (kind, fn) in enumerate(EDITS.items()):
        name, im = originals[k]
        dup = f'sub/copy_{kind}.jpg'
        fn(im).save(src / dup, quality=70)
        expect[dup] = name
    # a bigger copy of original 10 must win over it
    originals[10][1].resize((300, 300), Image.LANCZOS).save(src / 'big_10.png')
    (src / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
    return src, expect


def test_stage_on_generated_copies(copies, tmp_path):
    src, expect = copies
    out = tmp_path / 'out'
    summary = dedup.run(src, out)
    rep = json.loads((out / 'report.json').read_text())
    by = {str(Path(r['path']).relative_to(src)): r for r in rep['files']}
    for dup, orig in expect.items():
        assert by[dup]['status'] == 'duplicate', (dup, by[dup])
        assert Path(by[dup]['duplicate_of']).name == orig
    assert by['orig_10.jpg']['status'] == 'duplicate' and Path(by['orig_10.jpg']['duplicate_of']).name == 'big_10.png'
    assert by['broken.jpg']['status'] == 'rejected' and by['broken.jpg']['reason']
    kept = [r for r in rep['files'] if r['status'] == 'kept']
    assert len(kept) == 14 and summary['kept'] == 14 and summary['duplicates'] == len(expect) + 1
    outs = sorted(p.name for p in out.iterdir() if p.suffix in ('.jpg', '.png'))
    assert len(outs) == 14 and all(Path(r['output']).is_file() for r in kept)
    side = json.loads(Path(by['orig_03.jpg']['output'] + '.json').read_text())
    assert side == {'kind': 'painting', 'source_url': 'http://x/3'}
    assert (out / 'report').is_dir()
    # re-run: idempotent, nothing re-hashed (hashes come from the report), same decisions
    before = {k: (v['status'], v['duplicate_of']) for k, v in by.items()}
    dedup.run(src, out)
    rep2 = json.loads((out / 'report.json').read_text())
    assert {str(Path(r['path']).relative_to(src)): (r['status'], r['duplicate_of']) for r in rep2['files']} == before
    assert sorted(p.name for p in out.iterdir() if p.suffix in ('.jpg', '.png')) == outs


def test_distinct_images_not_merged(tmp_path):
    """40 distinct scenes: nothing is a duplicate at the default thresholds."""
    rng = np.random.default_rng(9)
    src = tmp_path / 'd'
    src.mkdir()
    for i in range(40):
        _scene(rng, 128).save(src / f's{i}.png')
    s = dedup.run(src, tmp_path / 'o', {'copy_kept': False})
    assert s['duplicates'] == 0 and s['kept'] == 40


def _aligned(rgb, size=256):
    """Our aligned crop (dlib HOG box -> dlib landmarks -> FFHQ square) of the largest face."""
    from data_prep import align, detectors, faces
    cfg = {**faces.DEFAULTS, 'size': size, 'max_upscale': 4.0}   # detection at full resolution
    fs = faces.detect_faces(rgb, detectors.resolve_detectors(['dlib_hog', 'haar', 'mtcnn'])[0], cfg)
    quad = faces.face_square(rgb, fs[0], cfg)[0]
    return Image.fromarray(align.extract(rgb, quad, size)[0])


def _arrays(hs):
    return [np.array([h[k] for h in hs], np.uint64) for k in ('phash', 'dhash', 'phash_flip', 'dhash_flip')]


def test_aligned_faces_of_different_people_not_merged():
    """Aligned crops of different people are closer than distinct scenes: 60 of the LFW faces that
    scikit-image ships (the README table has all 100), aligned as the faces stage does, stay 60
    clusters at the defaults, while mirrored + resized reposts of them are all found."""
    import data_prep_samples as S
    n = 60
    lfw = S.lfw_faces(n, side=200, pad=100)
    hs = [dedup.hash_image(_aligned(a)) for a in lfw]
    cfg = dedup.DEFAULTS
    kw = dict(phash_threshold=cfg['phash_threshold'], dhash_threshold=cfg['dhash_threshold'],
              colour_threshold=cfg['colour_threshold'])
    assert len(dedup.find_pairs(*_arrays(hs), colour=dedup.colour_array([h['colour'] for h in hs]), **kw)) == 0
    import io
    reposts = [dedup.hash_image(_aligned(np.asarray(Image.open(io.BytesIO(S.repost(a, 'mirrored_resized'))))))
               for a in lfw[:20]]
    both = hs + reposts
    pairs = dedup.find_pairs(*_arrays(both), colour=dedup.colour_array([h['colour'] for h in both]), **kw)
    assert _as_set(pairs) == {(i, n + i) for i in range(20)}


def test_colour_keeps_recoloured_faces_apart_but_not_graded_reposts():
    """Drawn faces from one template differ mainly in colour (hair, skin, background): their crops are
    pHash-close, the colour layout is not; a colour-graded repost of one stays a duplicate."""
    import io
    import data_prep_samples as S
    crops = [_aligned(S.synthetic_painted_face(i, 640)) for i in range(30)]
    graded = _aligned(np.asarray(Image.open(io.BytesIO(S.repost(S.synthetic_painted_face(3, 640), 'colour_graded')))))
    hs = [dedup.hash_image(c) for c in crops + [graded]]
    col = dedup.colour_array([h['colour'] for h in hs])
    cfg = dedup.DEFAULTS
    kw = dict(phash_threshold=cfg['phash_threshold'], dhash_threshold=cfg['dhash_threshold'])
    without = _as_set(dedup.find_pairs(*_arrays(hs), **kw))
    assert len([p for p in without if 30 not in p]) >= 3      # pHash + dHash alone merge drawn strangers
    got = _as_set(dedup.find_pairs(*_arrays(hs), colour=col, colour_threshold=cfg['colour_threshold'], **kw))
    assert got == {(3, 30)}


def test_crossfade_does_not_chain_two_people(tmp_path):
    """Eight frames fading from one face to another: neighbours are near-duplicates, the ends are not.
    Connected components merged them into one cluster; around representatives the two faces end in
    different clusters and every duplicate is within the thresholds of the frame it duplicates."""
    import data_prep_samples as S
    a = np.asarray(_aligned(S.grace_hopper()), np.float64)
    b = np.asarray(_aligned(np.asarray(Image.fromarray(S.astronaut()).resize((1024, 1024)))), np.float64)
    src = tmp_path / 'in'
    src.mkdir()
    for k in range(8):
        Image.fromarray(np.round(a + (b - a) * k / 7).astype(np.uint8)).save(src / f'frame{k}.png')
    cfg = dict(dedup.DEFAULTS)
    hs = {k: dedup.hash_image(Image.open(src / f'frame{k}.png')) for k in range(8)}
    ham = lambda x, y: bin(x ^ y).count('1')  # noqa: E731
    steps = [ham(hs[k]['phash'], hs[k + 1]['phash']) for k in range(7)]
    assert max(steps) <= cfg['phash_threshold'] < ham(hs[0]['phash'], hs[7]['phash'])   # a real chain
    dedup.run(src, tmp_path / 'out', {'copy_kept': False, 'colour_threshold': None})
    rows = {Path(r['path']).name: r for r in json.loads((tmp_path / 'out' / 'report.json').read_text())['files']}
    cluster = {n: int(r['extra']['cluster']) for n, r in rows.items()}
    assert rows['frame0.png']['status'] == 'kept' and cluster['frame0.png'] != cluster['frame7.png']
    for name, r in rows.items():
        if r['status'] == 'duplicate':
            k, j = int(name[5]), int(Path(r['duplicate_of']).name[5])
            assert rows[Path(r['duplicate_of']).name]['status'] == 'kept'
            assert ham(hs[k]['phash'], hs[j]['phash']) <= cfg['phash_threshold']


def test_keeps_the_best_copy_not_the_biggest_file(tmp_path):
    """Same picture as a 256-colour GIF (the biggest file), a q40 JPEG, a lossless PNG and a smaller
    mirrored JPEG: the PNG is kept. Face crops tie on size, so the source pixels in the sidecar
    decide: the crop cut from the largest source wins."""
    import data_prep_samples as S
    rgb = S.grace_hopper()
    src = tmp_path / 'in'
    src.mkdir()
    Image.fromarray(rgb).quantize(256, dither=Image.Dither.FLOYDSTEINBERG).save(src / 'a_noisy.gif')
    Image.fromarray(rgb).save(src / 'b_q40.jpg', quality=40)
    Image.fromarray(rgb).save(src / 'c_lossless.png')
    (src / 'd_small.jpg').write_bytes(S.repost(rgb, 'mirrored_resized'))
    assert (src / 'a_noisy.gif').stat().st_size > (src / 'b_q40.jpg').stat().st_size
    s = dedup.run(src, tmp_path / 'out')
    rows = {Path(r['path']).name: r for r in json.loads((tmp_path / 'out' / 'report.json').read_text())['files']}
    assert [n for n, r in rows.items() if r['status'] == 'kept'] == ['c_lossless.png'] and s['duplicates'] == 3
    assert all(Path(r['duplicate_of']).name == 'c_lossless.png' for r in rows.values() if r['status'] == 'duplicate')
    # crops: equal files, the sidecar says how many source pixels each one was cut from
    crops = tmp_path / 'crops'
    crops.mkdir()
    crop = _aligned(rgb)
    for name, side in (('x.jpg', 180.0), ('y.jpg', 320.0), ('z.jpg', 250.0)):
        crop.save(crops / name, quality=95)
        (crops / (name + '.json')).write_text(json.dumps({'face': {'source_side': side},
                                                          'clean': {'format': 'JPEG', 'mode': 'RGB', 'jpeg_quality': 90}}))
    dedup.run(crops, tmp_path / 'out2')
    rows = {Path(r['path']).name: r for r in json.loads((tmp_path / 'out2' / 'report.json').read_text())['files']}
    assert [n for n, r in rows.items() if r['status'] == 'kept'] == ['y.jpg']
    assert rows['y.jpg']['extra']['source_pixels'] == 320 ** 2


def test_parallel_hashing_matches_serial(copies, tmp_path):
    src, _ = copies
    a = dedup.run(src, tmp_path / 'serial', {'workers': 1})
    b = dedup.run(src, tmp_path / 'parallel', {'workers': 2})
    ra = {Path(r['path']).name: (r['status'], r['extra'].get('phash'), r['extra'].get('colour'))
          for r in json.loads((tmp_path / 'serial' / 'report.json').read_text())['files']}
    rb = {Path(r['path']).name: (r['status'], r['extra'].get('phash'), r['extra'].get('colour'))
          for r in json.loads((tmp_path / 'parallel' / 'report.json').read_text())['files']}
    assert ra == rb and a['duplicates'] == b['duplicates']


def test_unique_stage_catches_reposts_of_real_photos(tmp_path):
    """Whole pictures (stage 'unique', before faces): mirrored + resized, resized, q40 and colour-graded
    reposts of real photos are duplicates of the original; 40 different LFW portraits are not merged."""
    import data_prep_samples as S
    src = tmp_path / 'in'
    src.mkdir()
    photos = {'astronaut': np.asarray(Image.fromarray(S.astronaut()).resize((1024, 1024))), 'grace': S.grace_hopper()}
    photos.update({f'lfw{i:02d}': a for i, a in enumerate(S.lfw_faces(40, side=300, pad=150))})
    kinds = ('mirrored_resized', 'resized', 'recompressed_q40', 'colour_graded')
    for name, rgb in photos.items():
        Image.fromarray(rgb).save(src / f'{name}.png')
        if not name.startswith('lfw') or name < 'lfw05':
            for k in kinds:
                (src / f'{name}__{k}.jpg').write_bytes(S.repost(rgb, k))
    s = dedup.run(src, tmp_path / 'out', stage='unique')
    rows = {Path(r['path']).name: r for r in json.loads((tmp_path / 'out' / 'report.json').read_text())['files']}
    for name, r in rows.items():
        if '__' in name:
            assert r['status'] == 'duplicate' and Path(r['duplicate_of']).name == name.split('__')[0] + '.png', name
        else:
            assert r['status'] == 'kept', (name, r['reason'])
    assert s['kept'] == len(photos) and s['config']['copy_kept'] is False
    assert not list((tmp_path / 'out').glob('*.png'))          # nothing copied: kept = the inputs
