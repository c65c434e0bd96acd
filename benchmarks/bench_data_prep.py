"""Benchmarks for data_prep: images/s per stage and dedup clustering time at scale.

    python benchmarks/bench_data_prep.py                       # all: stages on 100 images, 1e5 + 1e6 hashes
    python benchmarks/bench_data_prep.py --n 50 --hashes 1e5   # quicker
    python benchmarks/bench_data_prep.py --skip-stages --hashes '' --scrape 10   # scrape only
    python benchmarks/bench_data_prep.py --compare-detectors   # face-detector yield table (README)

Inputs are generated (no downloads): 512x512 drawn portraits for the stages, random 64-bit hashes
with planted near-duplicate pairs for clustering. Face-detector yield uses real faces that packages
ship (scikit-image astronaut / camera / LFW subset, matplotlib's Grace Hopper), painting-like versions
of them, drawn faces and drawn anime faces, and face-free images for false positives.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault('DATA_PREP_QUIET', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


def _make_portraits(d: Path, n: int) -> None:
    from PIL import Image
    from data_prep import faces
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(faces.synthetic_painted_face(i, size=512)).save(d / f'img_{i:04d}.jpg', quality=92)
        (d / f'img_{i:04d}.jpg.json').write_text(json.dumps({'kind': 'photo' if i % 3 == 0 else 'painting'}))


def bench_stages(n: int) -> dict:
    """images/s of faces, dedup (hashing + search) and build on n generated 512px portraits."""
    from data_prep import build, dedup, faces
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _make_portraits(tmp / 'src', n)
        faces.available_detectors()  # model loading is not per-image work
        t = time.perf_counter(); s = faces.run(tmp / 'src', tmp / 'faces'); dt = time.perf_counter() - t
        out['faces'] = {'images': n, 'seconds': round(dt, 2), 'images_per_s': round(n / dt, 2),
                        'yield_per_kind': s['yield_per_kind'], 'detectors': s['detectors']}
        t = time.perf_counter(); dedup.run(tmp / 'faces', tmp / 'dedup'); dt = time.perf_counter() - t
        m = s['crops']
        out['dedup'] = {'images': m, 'seconds': round(dt, 2), 'images_per_s': round(m / dt, 2)}
        t = time.perf_counter(); b = build.run(tmp / 'dedup', tmp / 'build', {'name': 'bench'}); dt = time.perf_counter() - t
        out['build'] = {'images': b['examples'], 'seconds': round(dt, 2), 'images_per_s': round(b['examples'] / dt, 2)}
        clean_file = ROOT / 'benchmarks' / 'bench_data_clean.py'
        if clean_file.is_file():
            spec = importlib.util.spec_from_file_location('bench_data_clean', clean_file)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            if hasattr(mod, 'bench_clean'):
                out['clean'] = mod.bench_clean(str(tmp / 'clean_bench'), n)
    return out


def bench_scrape(n: int = 10) -> dict:
    """images/s of the scrape stage for n plain image URLs on a local HTTP server, with the rate
    limits off (sleep 0): what is left is gallery-dl's start-up per source (it imports every
    extractor to match the URL). Real runs are bounded by the configured sleeps instead."""
    import functools
    import http.server
    import threading
    from PIL import Image
    from data_prep import faces, scrape
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / 'www').mkdir()
        for i in range(n):
            Image.fromarray(faces.synthetic_painted_face(i, size=512)).save(tmp / 'www' / f'p{i}.jpg', quality=92)
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp / 'www'))
        handler.log_message = lambda *a: None
        httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            url = f'http://127.0.0.1:{httpd.server_address[1]}/'
            cfg = {'sleep': '0', 'sleep_request': '0', 'sleep_429': '0', 'ignore_user_config': True,
                   'sources': [{'url': f'{url}p{i}.jpg', 'kind': 'painting'} for i in range(n)]}
            t = time.perf_counter(); s = scrape.run(None, tmp / 'scrape', cfg); dt = time.perf_counter() - t
            t = time.perf_counter(); scrape.run(None, tmp / 'scrape', cfg); dt2 = time.perf_counter() - t
        finally:
            httpd.shutdown()
            httpd.server_close()
    return {'images': s['kept'], 'seconds': round(dt, 2), 'images_per_s': round(s['kept'] / dt, 2),
            'rerun_seconds_nothing_new': round(dt2, 2)}


def bench_clustering(n: int, seed: int = 0) -> dict:
    """Pair search + union-find on n random hashes (direct + mirrored) with 200 planted pairs at
    pHash distance 1..10; reports time and how many planted pairs were found per distance."""
    from data_prep import dedup
    rng = np.random.default_rng(seed)
    rnd = lambda: rng.integers(0, 2 ** 63, n, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, n, dtype=np.uint64)  # noqa: E731
    p, d, pf, df = rnd(), rnd(), rnd(), rnd()
    idx = rng.permutation(n)[:400].reshape(-1, 2)
    dist = np.arange(len(idx)) % 10 + 1
    for (i, j), k in zip(idx, dist):
        pm = np.uint64(0)
        for b in rng.choice(64, int(k), replace=False):
            pm |= np.uint64(1) << np.uint64(int(b))
        p[j], d[j] = p[i] ^ pm, d[i] ^ np.uint64(0b101)
    radius = dedup.auto_radius(2 * n, dedup.DEFAULTS['phash_threshold'], dedup.DEFAULTS['index_budget_s'])
    t0, c0 = time.perf_counter(), time.process_time()
    pairs = dedup.find_pairs(p, d, pf, df, brute_force_max=dedup.DEFAULTS['brute_force_max'],
                             index_budget_s=dedup.DEFAULTS['index_budget_s'], threads=dedup.DEFAULTS['threads'])
    labels = dedup.clusters(n, pairs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    found = set(map(tuple, np.sort(pairs, 1).tolist()))
    hit = np.array([(min(i, j), max(i, j)) in found for i, j in idx])
    by_d = {int(k): f'{int(hit[dist == k].sum())}/{int((dist == k).sum())}' for k in range(1, 11)}
    return {'hashes': n, 'wall_s': round(wall, 2), 'cpu_s': round(cpu, 2), 'exact_radius': radius,
            'pairs': int(len(found)), 'clusters': int(labels.max() + 1), 'planted_found_by_distance': by_d}


def compare_detectors(n_lfw: int = 100) -> list[dict]:
    """Yield (images with >= 1 face / images) per detector and per detector set on the offline test sets."""
    import warnings
    warnings.filterwarnings('ignore')
    import matplotlib.cbook as cb
    from PIL import Image
    from skimage import data
    from data_prep import faces as F

    def lfw():
        u8 = (data.lfw_subset() * 255).astype(np.uint8)  # 100 faces then 100 non-faces, 25x25
        out = []
        for a in u8:  # LFW crops are tight: upscale and pad with the edge so detectors see context
            g = np.asarray(Image.fromarray(a).resize((120, 120), Image.BICUBIC))
            out.append(np.repeat(np.pad(g, 70, mode='edge')[..., None], 3, 2))
        return out[:100], out[100:]
    grace = np.asarray(Image.open(cb.get_sample_data('grace_hopper.jpg')).convert('RGB'))
    lf, ln = lfw()
    sets = {
        'photo': {'astronaut': [data.astronaut()], 'grace_hopper': [grace],
                  'camera': [np.repeat(data.camera()[..., None], 3, 2)], 'lfw': lf[:n_lfw]},
        'painting': {'painted_photos': [F.paint_like(x, i) for i, x in enumerate([data.astronaut(), grace] * 3)],
                     'painted_lfw': [F.paint_like(x, i) for i, x in enumerate(lf[:40])],
                     'drawn': [F.synthetic_painted_face(i) for i in range(30)],
                     'drawn_anime': [F.synthetic_painted_face(100 + i, anime=True) for i in range(30)]},
        'no_face': {'lfw_nonface': ln[:40], 'coffee': [data.coffee()], 'chelsea': [data.chelsea()],
                    'rocket': [data.rocket()]},
    }
    av = F.available_detectors()
    names = [n for n, why in av.items() if why is None]
    hits, timing = {}, {}
    for n in names:
        t, cnt = time.perf_counter(), 0
        for grp, ss in sets.items():
            for k, imgs in ss.items():
                for i, im in enumerate(imgs):
                    b = F.DETECTORS[n](im)
                    b = b[b[:, 4] >= F.DEFAULTS['min_score'].get(n, -np.inf)] if len(b) else b
                    hits[(n, k, i)] = len(b) > 0
                    cnt += 1
        timing[n] = 1000 * (time.perf_counter() - t) / cnt
    rows = []
    combos = [[n] for n in names] + [c for c in (
        ['dlib_hog', 'haar'], ['mtcnn', 'haar'], ['mtcnn', 'dlib_hog'], ['mtcnn', 'dlib_hog', 'haar'],
        ['mtcnn', 'animeface'], ['mtcnn', 'dlib_hog', 'animeface'], ['mtcnn', 'dlib_hog', 'animeface', 'haar'],
        ['blazeface_short', 'haar'], ['blazeface_short', 'blazeface', 'dlib_hog', 'haar'],
        ['blazeface_short', 'mtcnn', 'dlib_hog', 'haar'],
        F.DEFAULTS['detectors']['photo'], F.DEFAULTS['detectors']['painting']) if all(x in names for x in c)]
    seen = set()
    for c in combos:
        if tuple(c) in seen:
            continue
        seen.add(tuple(c))
        row = {'detectors': '+'.join(c)}
        for grp, ss in sets.items():
            tot = sum(len(v) for v in ss.values())
            got = sum(any(hits[(n, k, i)] for n in c) for k, v in ss.items() for i in range(len(v)))
            row[grp] = f'{got}/{tot} ({got / tot:.3f})'
        row['by_set'] = {k: f'{sum(any(hits[(n, k, i)] for n in c) for i in range(len(v)))}/{len(v)}'
                         for ss in sets.values() for k, v in ss.items()}
        row['ms_per_image'] = round(sum(timing[n] for n in c), 1)
        rows.append(row)
    rows.append({'unavailable': {n: why for n, why in av.items() if why}})
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=100, help='generated images for the stage benchmarks')
    ap.add_argument('--hashes', default='1e5,1e6', help='comma list of hash counts for clustering')
    ap.add_argument('--compare-detectors', action='store_true', help='only the face-detector yield table')
    ap.add_argument('--skip-stages', action='store_true')
    ap.add_argument('--scrape', type=int, default=10, help='local image URLs for the scrape benchmark (0: skip)')
    a = ap.parse_args(argv)
    print(f'# {os.cpu_count()} CPUs', file=sys.stderr)
    if a.compare_detectors:
        for r in compare_detectors():
            print(json.dumps(r))
        return
    res = {}
    if a.scrape:
        res['scrape'] = bench_scrape(a.scrape)
        print(json.dumps({'scrape': res['scrape']}), flush=True)
    if not a.skip_stages:
        res['stages'] = bench_stages(a.n)
        print(json.dumps(res['stages']), flush=True)
    for h in [int(float(x)) for x in a.hashes.split(',') if x]:
        r = bench_clustering(h)
        res[f'cluster_{h}'] = r
        print(json.dumps(r), flush=True)


if __name__ == '__main__':
    main()
