"""Benchmarks for data_prep: per-stage throughput, report bookkeeping at 1e5 records, dedup search at
scale, the dedup table (reposts of real photos), face alignment agreement and face-detector yield.

    nice -n 10 python benchmarks/bench_data_prep.py --stages 10000   # clean -> unique -> faces -> dedup -> build
    python benchmarks/bench_data_prep.py --bookkeeping 100000         # report journal at 1e5 records
    python benchmarks/bench_data_prep.py --hashes 1e5,1e6             # exact pair search
    python benchmarks/bench_data_prep.py --dedup-table                # README dedup table (AFTER)
    python benchmarks/bench_data_prep.py --alignment                  # landmark agreement across reposts
    python benchmarks/bench_data_prep.py --compare-detectors          # face-detector yield table (README)
    python benchmarks/bench_data_prep.py --scrape 10                  # gallery-dl on a local server

``--data-prep-from DIR`` imports data_prep from DIR first: run a snapshot of older code (``git
archive``) for BEFORE numbers; ``--dedup-table`` and ``--alignment`` then use the stages that code
has (faces -> dedup, no ``unique``). Inputs are generated or shipped by packages (no downloads): drawn
portraits, scikit-image / matplotlib photos and LFW faces (``tests/data_prep_samples.py``).
Prints one JSON object per measurement.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests'))
os.environ.setdefault('DATA_PREP_QUIET', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import data_prep_samples as S  # noqa: E402


def _emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _stage(name: str, inp, out, cfg: dict | None = None) -> dict:
    """Run a stage with the imported data_prep (new driver when present, else the module's run)."""
    from data_prep import cli
    if hasattr(cli, 'run_stage') and 'unique' in getattr(cli, 'STAGES', ()):
        return cli.run_stage(name, inp, out, {name: cfg or {}})
    import importlib
    return importlib.import_module(f'data_prep.{name}').run(inp, out, cfg or {})


def _rows(folder: Path) -> list[dict]:
    return json.loads((folder / 'report.json').read_text())['files']


# ---------------------------------------------------------------------------------- generated folder

def _scene(rng, h, w) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32) + rng.uniform(40, 200, 3)
    img += (xx / w)[..., None] * rng.uniform(-80, 80, 3) + (yy / h)[..., None] * rng.uniform(-80, 80, 3)
    for _ in range(int(rng.integers(4, 9))):
        cy, cx, ry, rx = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(30, h / 3), rng.uniform(30, w / 3)
        m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        img[m] = img[m] * 0.3 + rng.uniform(0, 255, 3) * 0.7
    img += rng.normal(0, 8, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _scrape_like(i: int, seed: int = 0) -> tuple[str, bytes, dict]:
    """One file of a scraped-looking folder: 1024x768 JPEGs, 7 in 10 with a drawn portrait, 1 in 10 a
    repost of an earlier one, 1 in 10 a face-free scene, 1 in 10 a defect (truncated / gray / tiny)."""
    from PIL import Image
    rng = np.random.default_rng([seed, i])
    kind = 'photo' if i % 3 == 0 else 'painting'
    r = i % 10
    if r == 9:  # repost of file i - 9 (a portrait)
        src = _scrape_like(i - 9, seed)[1]
        rgb = np.asarray(Image.open(io.BytesIO(src)).convert('RGB'))
        return f'img_{i:06d}.jpg', S.repost(rgb, list(S.REPOSTS)[i // 10 % len(S.REPOSTS)]), {'kind': kind}
    if r == 8:
        rgb = _scene(rng, 768, 1024)
    else:
        canvas = _scene(rng, 768, 1024)
        face = S.synthetic_painted_face(i, 600, tilt=15.0)
        x, y = int(rng.integers(0, 1024 - 600)), int(rng.integers(0, 768 - 600))
        canvas[y:y + 600, x:x + 600] = face
        rgb = canvas
    b = io.BytesIO()
    im = Image.fromarray(rgb)
    if r == 7:
        defect = (i // 10) % 3
        if defect == 0:
            im.save(b, 'JPEG', quality=90)
            return f'img_{i:06d}.jpg', b.getvalue()[: len(b.getvalue()) // 2], {'kind': kind}
        im = im.convert('L') if defect == 1 else im.resize((200, 150))
    im.save(b, 'JPEG', quality=90)
    return f'img_{i:06d}.jpg', b.getvalue(), {'kind': kind}


def _write_chunk(args) -> None:
    d, lo, hi, seed = args
    for i in range(lo, hi):
        name, data, side = _scrape_like(i, seed)
        (Path(d) / name).write_bytes(data)
        (Path(d) / (name + '.json')).write_text(json.dumps(side))


def make_scrape_folder(d: Path, n: int, workers: int = 2) -> float:
    """Write n scraped-looking files (+ sidecars) into d, in parallel; returns seconds."""
    from concurrent.futures import ProcessPoolExecutor
    d.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    step = max(1, n // (workers * 8))
    with ProcessPoolExecutor(workers) as ex:
        list(ex.map(_write_chunk, [(str(d), lo, min(n, lo + step), 0) for lo in range(0, n, step)]))
    return time.perf_counter() - t


def _cpu_s() -> float:
    """CPU seconds of this process and of its finished children (the stages' worker processes)."""
    import resource
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def bench_stages(n: int, keep: str | None = None) -> dict:
    """Each stage of ``data-prep all --from clean`` on n generated scraped-looking files; images/s per
    stage, CPU seconds per input (what an otherwise idle machine would spend), and the minutes a
    1e5-image folder would take (each stage scaled by its input count). With ``keep``, a folder
    that already holds the n generated files is reused (only the stages run again)."""
    tmp = Path(keep) if keep else Path(tempfile.mkdtemp(prefix='bench_data_prep_'))
    try:
        if keep and len(list((tmp / 'scrape').glob('*.jpg'))) == n:
            gen = 0.0
            for st in ('clean', 'unique', 'faces', 'dedup', 'build'):
                shutil.rmtree(tmp / st, ignore_errors=True)
        else:
            gen = make_scrape_folder(tmp / 'scrape', n)
        res = {'bench': 'stages', 'files': n, 'generate_s': round(gen, 1), 'cpus': os.cpu_count(), 'stages': {}}
        prev = tmp / 'scrape'
        for st in ('clean', 'unique', 'faces', 'dedup', 'build'):
            load0, c0 = _load(), _cpu_s()
            t = time.perf_counter()
            s = _stage(st, prev, tmp / st, {'name': 'bench'} if st == 'build' else None)
            dt, cpu = time.perf_counter() - t, _cpu_s() - c0
            inputs = s.get('inputs', n)
            res['stages'][st] = {'inputs': inputs, 'kept': s.get('kept'), 'seconds': round(dt, 1),
                                 'images_per_s': round(inputs / dt, 2) if dt else None,
                                 'cpu_s': round(cpu, 1), 'cpu_ms_per_input': round(1000 * cpu / max(inputs, 1), 1),
                                 'load': [load0, _load()]}
            _emit({'stage': st, **res['stages'][st]})
            prev = tmp / st
        scale = 1e5 / n
        res['minutes_for_1e5'] = round(sum(v['seconds'] for v in res['stages'].values()) * scale / 60, 1)
        res['per_stage_minutes_for_1e5'] = {k: round(v['seconds'] * scale / 60, 1) for k, v in res['stages'].items()}
        # on 2 cores of our own: the CPU seconds spread over both (every stage but build runs 2 workers)
        res['cpu_minutes_for_1e5_on_2_cores'] = round(sum(v['cpu_s'] for v in res['stages'].values()) * scale / 2 / 60, 1)
        return res
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def bench_bookkeeping(n: int) -> dict:
    """Report cost at n records: adding them one by one (journal), compacting, reopening."""
    from data_prep.report import FileRecord, StageReport
    with tempfile.TemporaryDirectory() as tmp:
        rep = StageReport.open(tmp, 'clean')
        extra = {'bytes': 123456, 'width': 1024, 'height': 768, 'format': 'JPEG', 'mode': 'RGB',
                 'colourfulness': 33.1, 'tint_residual': 21.2, 'sharpness': 101.5, 'notes': [], 'kind': 'photo',
                 'source': 'https://www.artstation.com/search?q=x', 'copied': True}
        t = time.perf_counter()
        for i in range(n):
            rep.add(FileRecord(f'/data/x/scrape/img_{i:07d}.jpg', 'kept', output=f'/data/x/clean/img_{i:07d}.jpg',
                               extra=extra))
        add_s = time.perf_counter() - t
        t = time.perf_counter()
        if hasattr(rep, 'close'):
            rep.save({'n': n})
        else:  # old code: its autosave already rewrote the report every 50 records
            rep.save({'n': n})
        save_s = time.perf_counter() - t
        t = time.perf_counter()
        again = StageReport.open(tmp, 'clean')
        open_s = time.perf_counter() - t
        assert len(again.records()) == n
        size = (Path(tmp) / 'report.json').stat().st_size
    return {'bench': 'bookkeeping', 'records': n, 'add_s': round(add_s, 2), 'us_per_record': round(1e6 * add_s / n, 1),
            'compact_s': round(save_s, 2), 'reopen_s': round(open_s, 2), 'report_mb': round(size / 2 ** 20, 1),
            'load': _load()}


def bench_clustering(n: int, seed: int = 0) -> dict:
    """Exact pair search + representative clusters on n random hashes (direct + mirrored) with 200
    planted pairs at pHash distance 1..threshold; time and how many planted pairs were found."""
    from data_prep import dedup
    tp = dedup.DEFAULTS['phash_threshold']
    rng = np.random.default_rng(seed)
    rnd = lambda: rng.integers(0, 2 ** 63, n, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, n, dtype=np.uint64)  # noqa: E731
    p, d, pf, df = rnd(), rnd(), rnd(), rnd()
    idx = rng.permutation(n)[:400].reshape(-1, 2)
    dist = np.arange(len(idx)) % tp + 1
    for (i, j), k in zip(idx, dist):
        pm = np.uint64(0)
        for b in rng.choice(64, int(k), replace=False):
            pm |= np.uint64(1) << np.uint64(int(b))
        p[j], d[j] = p[i] ^ pm, d[i] ^ np.uint64(0b101)
    t0, c0 = time.perf_counter(), time.process_time()
    pairs = dedup.find_pairs(p, d, pf, df, phash_threshold=tp, dhash_threshold=dedup.DEFAULTS['dhash_threshold'],
                             brute_force_max=dedup.DEFAULTS['brute_force_max'], threads=dedup.DEFAULTS['threads'])
    rep = dedup.representative_clusters(n, pairs, np.arange(n))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    found = set(map(tuple, np.sort(pairs, 1).tolist()))
    hit = np.array([(min(i, j), max(i, j)) in found for i, j in idx])
    return {'bench': 'clustering', 'hashes': n, 'threshold': tp, 'wall_s': round(wall, 2), 'cpu_s': round(cpu, 2),
            'planted_found': f'{int(hit.sum())}/{len(hit)}', 'pairs': len(found),
            'clusters': int(len(np.unique(rep))), 'plan': dedup.plan_index(2 * n, tp), 'load': _load()}


# ------------------------------------------------------------------------------------- dedup table

def _table_inputs(d: Path, n_reposted: int = 30, n_lfw: int = 100, n_drawn: int = 30) -> dict:
    """Originals (astronaut at 1024 px, Grace Hopper, 100 LFW faces, 30 drawn faces) and the six
    reposts of the first 2 + n_reposted photos; {file name: picture it shows}."""
    from PIL import Image
    d.mkdir(parents=True)
    groups = {}
    astro = np.asarray(Image.fromarray(S.astronaut()).resize((1024, 1024), Image.LANCZOS))
    photos = [('astronaut', astro), ('grace', S.grace_hopper())]
    photos += [(f'lfw{i:03d}', a) for i, a in enumerate(S.lfw_faces(n_lfw, side=300, pad=150))]
    for gi, (name, rgb) in enumerate(photos):
        Image.fromarray(rgb).save(d / f'{name}.png')
        groups[f'{name}.png'] = name
        if gi < 2 + n_reposted:
            for kind in S.REPOSTS:
                (d / f'{name}__{kind}.jpg').write_bytes(S.repost(rgb, kind))
                groups[f'{name}__{kind}.jpg'] = name
    for i in range(n_drawn):
        Image.fromarray(S.synthetic_painted_face(i, 640)).save(d / f'drawn{i:03d}.png')
        groups[f'drawn{i:03d}.png'] = f'drawn{i:03d}'
    for name in groups:
        (d / (name + '.json')).write_text(json.dumps({'kind': 'painting' if name.startswith('drawn') else 'photo'}))
    return groups


def _evaluate(groups: dict, survivors: set, judged: set, edges: list) -> dict:
    """A repost is caught when it ends in the same cluster as its original (edges: input -> the input
    it was merged into); a false merge joins two different pictures."""
    parent = {n: n for n in groups}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x
    for a, b in edges:
        if a in parent and b in parent:
            parent[find(a)] = find(b)
    res = {}
    for kind in S.REPOSTS:
        rp = [n for n in groups if n.endswith(f'__{kind}.jpg') and n in judged]
        res[kind] = f'{sum(find(n) == find(n.split("__")[0] + ".png") for n in rp)}/{len(rp)}'
    comp: dict = {}
    for n, g in groups.items():
        comp.setdefault(find(n), set()).add(g)
    res['false_merges'] = sum(len(gs) - 1 for gs in comp.values())
    distinct = [g for g in set(groups.values()) if g.startswith('lfw')]
    res['false_merges_lfw'] = sum(len(gs) - 1 for gs in comp.values() if set(gs) & set(distinct))
    res['false_merges_drawn'] = sum(len(gs) - 1 for gs in comp.values() if all(g.startswith('drawn') for g in gs))
    origs = [n for n in groups if n.endswith('.png') and any(m.startswith(n[:-4] + '__') for m in groups)]
    res['original_kept'] = f'{sum(n in survivors for n in origs)}/{len(origs)}'
    return res


def dedup_table() -> dict:
    """Reposts of real photos through the dedup stages this data_prep has: unique -> faces -> dedup
    (or faces -> dedup for older code, plus its dedup straight on the source images)."""
    from data_prep import cli
    new = 'unique' in getattr(cli, 'STAGES', ())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / 'src'
        groups = _table_inputs(src)
        name = lambda p: Path(p).name  # noqa: E731
        t = time.perf_counter()
        if new:
            _stage('unique', src, tmp / 'unique')
            _stage('faces', tmp / 'unique', tmp / 'faces')
        else:
            _stage('faces', src, tmp / 'faces')
        _stage('dedup', tmp / 'faces', tmp / 'dedup')
        dt = time.perf_counter() - t
        crop_of, judged, edges = {}, set(), []
        for r in _rows(tmp / 'faces'):
            for o in (r.get('extra') or {}).get('outputs') or []:
                crop_of[name(o)] = name(r['path'])
                judged.add(name(r['path']))
        if new:
            for r in _rows(tmp / 'unique'):
                if r['status'] == 'duplicate':
                    edges.append((name(r['path']), name(r['duplicate_of'])))
                    judged.add(name(r['path']))
        survivors = set()
        for r in _rows(tmp / 'dedup'):
            inp = crop_of.get(name(r['path']))
            if inp is None:
                continue
            if r['status'] == 'kept':
                survivors.add(inp)
            elif r['status'] == 'duplicate':
                edges.append((inp, crop_of.get(name(r['duplicate_of']), name(r['duplicate_of']))))
        res = {'bench': 'dedup_table', 'code': 'unique -> faces -> dedup' if new else 'faces -> dedup',
               **_evaluate(groups, survivors, judged, edges),
               'images': len(groups), 'with_face_or_merged': len(judged), 'seconds': round(dt, 1), 'load': _load()}
        if not new:  # the old dedup straight on the source images, for comparison
            _stage('dedup', src, tmp / 'dedup_src')
            rows = _rows(tmp / 'dedup_src')
            res['dedup_on_sources'] = _evaluate(groups, {name(r['path']) for r in rows if r['status'] == 'kept'}, set(groups),
                                                [(name(r['path']), name(r['duplicate_of'])) for r in rows if r['status'] == 'duplicate'])
        return res


def _mtcnn_points(rgb):
    from mtcnn import MTCNN
    global _MT
    if '_MT' not in globals():
        _MT = MTCNN(device='CPU:0')
    r = np.asarray(_MT.detect_faces(np.ascontiguousarray(rgb), box_format='xyxy', output_type='numpy'))
    if not r.size:
        return None
    r = r[np.argmax((r[:, 3] - r[:, 1]) * (r[:, 4] - r[:, 2]))]
    return np.stack([r[6:11], r[11:16]], -1)  # left eye, right eye, nose, mouth left, mouth right


def alignment() -> dict:
    """Where the same face lands in the crops of a photo and of its reposts: MTCNN's five points,
    found again on each 512 px crop (independent of how the crop was made), compared with the
    original's crop (mirrored reposts mirrored back). Agreement: the mean (and the largest) distance of
    the five points, as a fraction of the crop size."""
    from PIL import Image
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / 'src'
        groups = _table_inputs(src, n_reposted=30, n_lfw=30, n_drawn=0)
        _stage('faces', src, tmp / 'faces')
        crops = {}
        for r in _rows(tmp / 'faces'):
            outs = (r.get('extra') or {}).get('outputs') or []
            if outs:
                crops[Path(r['path']).name] = outs[0]
        pts = {n: _mtcnn_points(np.asarray(Image.open(c).convert('RGB'))) for n, c in crops.items()}
        size = 512.0
        per_kind = {}
        for kind in S.REPOSTS:
            mean, worst = [], []
            for g in set(groups.values()):
                a, b = pts.get(f'{g}.png'), pts.get(f'{g}__{kind}.jpg')
                if a is None or b is None:
                    continue
                if kind.startswith('mirrored'):
                    b = b[[1, 0, 2, 4, 3]] * [-1, 1] + [size, 0]
                d = np.hypot(*(a - b).T) / size
                mean.append(float(d.mean()))
                worst.append(float(d.max()))
            mean, worst = np.asarray(mean), np.asarray(worst)
            per_kind[kind] = {'pairs': len(mean), 'median_mean': round(float(np.median(mean)), 4) if len(mean) else None,
                              'mean_within_2pct': f'{int((mean <= 0.02).sum())}/{len(mean)}',
                              'max_within_2pct': f'{int((worst <= 0.02).sum())}/{len(worst)}'}
        return {'bench': 'alignment', 'crops': len(crops), 'per_repost': per_kind, 'load': _load()}


# ------------------------------------------------------------------------------------ detectors / scrape

def compare_detectors(n_lfw: int = 100) -> list[dict]:
    """Yield (images with >= 1 face / images) per detector and per detector set on the offline test
    sets, through the stage's detection (scaled copies, merging), plus how the default set aligns."""
    import warnings
    warnings.filterwarnings('ignore')
    from skimage import data
    from data_prep import align, detectors as D, faces as F
    cfg = dict(F.DEFAULTS)
    grace = S.grace_hopper()
    lf = S.lfw_faces(n_lfw, side=300, pad=150)
    ln = S.lfw_faces(40, side=300, pad=150, nonfaces=True)
    sets = {
        'photo': {'astronaut': [S.astronaut()], 'grace_hopper': [grace],
                  'camera': [np.repeat(data.camera()[..., None], 3, 2)], 'lfw': lf},
        'painting': {'painted_photos': [S.paint_like(x, i) for i, x in enumerate([S.astronaut(), grace] * 3)],
                     'painted_lfw': [S.paint_like(x, i) for i, x in enumerate(lf[:40])],
                     'drawn': [S.synthetic_painted_face(i, 640) for i in range(30)],
                     'drawn_anime': [S.synthetic_painted_face(100 + i, 640, anime=True) for i in range(30)]},
        'no_face': {'lfw_nonface': ln, 'coffee': [data.coffee()], 'chelsea': [data.chelsea()], 'rocket': [data.rocket()]},
    }
    av = D.available_detectors()
    names = [n for n, why in av.items() if why is None]
    hits, timing = {}, {}
    for n in names:
        use, _ = D.resolve_detectors([n])
        t, cnt = time.perf_counter(), 0
        for ss in sets.values():
            for k, imgs in ss.items():
                for i, im in enumerate(imgs):
                    hits[(n, k, i)] = bool(F.detect_faces(im, use, cfg))
                    cnt += 1
        timing[n] = 1000 * (time.perf_counter() - t) / cnt
    rows = []
    combos = [[n] for n in names] + [c for c in (
        ['dlib_hog', 'haar'], ['mtcnn', 'haar'], ['mtcnn', 'dlib_hog', 'haar'], ['blazeface_short', 'haar'],
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
        row['ms_per_image_all_run'] = round(sum(timing[n] for n in c), 1)
        rows.append(row)
    # how the default sets crop (first detector that finds a face, then landmarks or box)
    modes = {}
    for grp in ('photo', 'painting'):
        use, _ = D.resolve_detectors(F.DEFAULTS['detectors'][grp])
        t, cnt = time.perf_counter(), 0
        m = {'landmarks': 0, 'box': 0}
        for imgs in sets[grp].values():
            for im in imgs:
                fs = F.detect_faces(im, use, cfg)
                cnt += 1
                if fs:
                    m[F.face_square(im, fs[0], cfg)[1]] += 1
        modes[grp] = {**m, 'ms_per_image_default': round(1000 * (time.perf_counter() - t) / cnt, 1)}
    rows.append({'default_set_alignment': modes, 'landmark_model': Path(align.predictor_path()).name})
    rows.append({'unavailable': {n: why for n, why in av.items() if why}, 'load': _load()})
    return rows


def bench_scrape(n: int = 10) -> dict:
    """images/s of the scrape stage for n plain image URLs on a local HTTP server, rate limits off
    (sleep 0): what is left is gallery-dl's start-up per source. Real runs are set by the sleeps."""
    import functools
    import http.server
    import threading
    from PIL import Image
    from data_prep import scrape
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / 'www').mkdir()
        for i in range(n):
            Image.fromarray(S.synthetic_painted_face(i, size=512)).save(tmp / 'www' / f'p{i}.jpg', quality=92)
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
    return {'bench': 'scrape', 'images': s['kept'], 'seconds': round(dt, 2), 'images_per_s': round(s['kept'] / dt, 2),
            'rerun_seconds_nothing_new': round(dt2, 2), 'load': _load()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data-prep-from', help='import data_prep from this folder first (BEFORE numbers)')
    ap.add_argument('--stages', type=int, default=0, help='generated files through clean..build')
    ap.add_argument('--keep', help='with --stages: work in this folder and keep it')
    ap.add_argument('--bookkeeping', type=int, default=0, help='records for the report benchmark')
    ap.add_argument('--hashes', default='', help='comma list of hash counts for the pair search, e.g. 1e5,1e6')
    ap.add_argument('--dedup-table', action='store_true')
    ap.add_argument('--alignment', action='store_true')
    ap.add_argument('--compare-detectors', action='store_true')
    ap.add_argument('--scrape', type=int, default=0, help='local image URLs for the scrape benchmark')
    a = ap.parse_args(argv)
    if a.data_prep_from:
        sys.path.insert(0, str(Path(a.data_prep_from).resolve()))
    import data_prep
    print(f'# data_prep from {Path(data_prep.__file__).parent}, {os.cpu_count()} CPUs, load {_load()}', file=sys.stderr)
    if a.scrape:
        _emit(bench_scrape(a.scrape))
    if a.bookkeeping:
        _emit(bench_bookkeeping(a.bookkeeping))
    for h in [int(float(x)) for x in a.hashes.split(',') if x]:
        _emit(bench_clustering(h))
    if a.dedup_table:
        _emit(dedup_table())
    if a.alignment:
        _emit(alignment())
    if a.compare_detectors:
        for r in compare_detectors():
            _emit(r)
    if a.stages:
        _emit(bench_stages(a.stages, a.keep))


if __name__ == '__main__':
    main()
