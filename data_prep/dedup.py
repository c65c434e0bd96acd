"""Stage `dedup`: near-duplicate removal with perceptual hashes, at scale.

Every image gets four 64-bit hashes: pHash and dHash of the image and of its x-flipped copy (so a
mirrored copy matches directly). Two images are near-duplicates when

    min over orientation o of:  hamming(phash_a, phash_b^o) <= phash_threshold
                           and  hamming(dhash_a, dhash_b^o) <= dhash_threshold

where ``^o`` is the direct or the mirrored hash of b (same orientation for both hashes: pHash does
the work, dHash confirms, so two different images that happen to share a pHash are not merged).

Search. Small sets (up to ``brute_force_max`` images) are compared all-pairs in vectorised blocks,
exact at any threshold. Large sets use multi-index hashing on the pHash: the 64 bits are split into
``n`` chunks; a pair within Hamming distance ``r`` differs in at most ``r`` chunks, so it agrees
exactly on some union of ``n - r`` chunks. One table per such union (``C(n, r)`` tables; ``n = r + 1``
is classic MIH with single-chunk keys) buckets the codes with a numpy sort; every pair inside a
bucket is a candidate and is verified with a vectorised popcount. ``n`` is chosen per run to
minimise (sorts + candidate pairs). This finds *every* pair within ``index_radius`` (exact), and
pairs between ``index_radius`` and ``phash_threshold`` whenever they agree on some table's key
(mostly they do) or are linked through a third copy. Clusters are connected components of the
verified pairs (scipy union-find); per cluster the image with the most pixels, then the largest
file, then the smallest path, is kept, the others get status 'duplicate' and ``duplicate_of``.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

DEFAULTS: dict = {
    # pHash Hamming distance (of 64 bits) at or below which two images are duplicates. Measured on
    # generated copies (re-encoded q40-q70, resized, <= 2% crop per side, brightened, saturated,
    # contrast, mirrored): 0-5. Distinct images: generated scenes >= 18, but aligned face crops of
    # different people (scikit-image's LFW subset) get as close as 10, hence 8 (README).
    'phash_threshold': 8,
    # dHash confirmation (same orientation as the pHash match): copies 0-5; with 8/16 no pair of the
    # 100 LFW faces or 60 drawn faces is merged (10/20 merged 2 LFW pairs).
    'dhash_threshold': 16,
    'mirror': True,            # also match x-flipped copies
    'brute_force_max': 6000,   # up to this many images: exact all-pairs comparison
    # large sets: every pair within this pHash distance is guaranteed found; 'auto' = the largest
    # radius <= phash_threshold whose estimated single-core cost fits index_budget_s
    'index_radius': 'auto',
    'index_budget_s': 40.0,
    'threads': 2,              # tables are searched in parallel (numpy releases the GIL)
    'copy_kept': True,         # copy kept files (and their sidecars) into OUTPUT
}

_HASH_KEYS = ('phash', 'dhash', 'phash_flip', 'dhash_flip')


# ----------------------------------------------------------------------------------------------
# hashing
# ----------------------------------------------------------------------------------------------

def _bits_to_int(bits: np.ndarray) -> int:
    """Row-major boolean hash matrix -> unsigned int (first bit most significant)."""
    return int.from_bytes(np.packbits(np.asarray(bits, bool).ravel()).tobytes(), 'big')


def hash_image(img) -> dict[str, int]:
    """Perceptual hashes of a PIL image: phash, dhash and those of the x-flipped image (64-bit ints)."""
    import imagehash
    from PIL import ImageOps
    img = img.convert('RGB')
    flipped = ImageOps.mirror(img)
    return {'phash': _bits_to_int(imagehash.phash(img).hash),
            'dhash': _bits_to_int(imagehash.dhash(img).hash),
            'phash_flip': _bits_to_int(imagehash.phash(flipped).hash),
            'dhash_flip': _bits_to_int(imagehash.dhash(flipped).hash)}


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise Hamming distance of uint64 arrays (broadcasting)."""
    return np.bitwise_count(np.bitwise_xor(a, b))


# ----------------------------------------------------------------------------------------------
# pair search
# ----------------------------------------------------------------------------------------------

def _as_u64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.uint64).ravel()


def _codes(phash, dhash, phash_flip, dhash_flip, mirror):
    """Stacked entries: image i at row i (direct) and, with mirror, at row N + i (flipped)."""
    n = len(phash)
    if mirror:
        p = np.concatenate([phash, phash_flip]); d = np.concatenate([dhash, dhash_flip])
        img = np.concatenate([np.arange(n), np.arange(n)])
        flip = np.concatenate([np.zeros(n, bool), np.ones(n, bool)])
    else:
        p, d, img, flip = phash, dhash, np.arange(n), np.zeros(n, bool)
    return p, d, img, flip


def _verify(a, b, p, d, img, flip, tp, td):
    """Keep entry pairs that are two different images, not both flipped, within both thresholds."""
    ok = (img[a] != img[b]) & ~(flip[a] & flip[b])
    a, b = a[ok], b[ok]
    ok = (hamming(p[a], p[b]) <= tp) & (hamming(d[a], d[b]) <= td)
    return np.stack([img[a[ok]], img[b[ok]]], 1)


def _bucket_pairs(keys: np.ndarray, codes: np.ndarray, threshold: int, verify) -> list[np.ndarray]:
    """Pairs of entries with equal keys whose codes are within ``threshold``, then ``verify``-ed.

    After one sort, bucket members are contiguous; pairs are generated offset by offset (position
    p with p + o inside its bucket), so the work is proportional to the number of candidate pairs,
    fully vectorised, and memory stays bounded (only survivors of the popcount test are kept)."""
    order = np.argsort(keys)
    k = keys[order]
    m = len(k)
    new = np.empty(m, bool); new[0] = True; np.not_equal(k[1:], k[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, m))
    big = sizes > 1
    starts, sizes = starts[big], sizes[big]
    if len(starts) == 0:
        return []
    total = int(sizes.sum())
    pos = np.repeat(starts, sizes) + (np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes))
    end = np.repeat(starts + sizes, sizes)
    cs = codes[order]  # codes in bucket order: the gathers below are near-sequential
    out, o = [], 1
    while len(pos):
        keep = pos + o < end
        pos, end = pos[keep], end[keep]
        if not len(pos):
            break
        close = np.bitwise_count(cs[pos] ^ cs[pos + o]) <= threshold
        if close.any():
            a = pos[close]
            found = verify(order[a], order[a + o])
            if len(found):
                out.append(found)
        o += 1
    return out


def _chunk_masks(n_chunks: int) -> list[int]:
    """64 bit positions split into n contiguous chunks (as bit masks)."""
    bounds = np.linspace(0, 64, n_chunks + 1).round().astype(int)
    return [((1 << (hi - lo)) - 1) << lo for lo, hi in zip(bounds[:-1], bounds[1:])]


def plan_index(n_entries: int, radius: int) -> tuple[int, int, float]:
    """Chunks n minimising the estimated cost of an exact radius-r multi-index search.

    Cost model (measured on 2 CPU cores): a table costs one sort (~1.5e-7 s per entry) plus its
    expected random candidate pairs n_entries^2 / 2 / 2^bits (~4e-8 s each). Returns
    (n_chunks, n_tables, estimated seconds)."""
    best = None
    for n in range(radius + 1, 65):
        tables = math.comb(n, radius)
        if tables > 5000:
            break
        bits = 64 * (n - radius) / n
        cost = tables * (1.5e-7 * n_entries + 4e-8 * n_entries ** 2 / 2 / 2 ** bits)
        if best is None or cost < best[2]:
            best = (n, tables, cost)
    return best


def auto_radius(n_entries: int, threshold: int, budget_s: float) -> int:
    """Largest exact search radius <= threshold whose estimated cost fits the budget (at least 3,
    which is always cheap: 4 tables of 16-bit keys)."""
    best = min(3, threshold)
    for r in range(best, threshold + 1):
        if plan_index(n_entries, r)[2] <= budget_s:
            best = r
    return best


def find_pairs(phash, dhash, phash_flip=None, dhash_flip=None, *, phash_threshold: int = 8,
               dhash_threshold: int = 16, mirror: bool = True, brute_force_max: int = 6000,
               index_radius: int | str = 'auto', index_budget_s: float = 40.0, threads: int = 2,
               progress=None) -> np.ndarray:
    """Near-duplicate image pairs (E, 2) int64 with i < j (may contain repeats).

    Exact for len(phash) <= brute_force_max; above that, multi-index hashing that is exact up to
    pHash distance ``index_radius`` (see module docstring). ``progress``: optional callable(n) for
    a progress bar over tables."""
    phash, dhash = _as_u64(phash), _as_u64(dhash)
    n = len(phash)
    if mirror and (phash_flip is None or dhash_flip is None):
        raise ValueError('mirror=True needs phash_flip and dhash_flip')
    if n < 2:
        return np.zeros((0, 2), np.int64)
    pf = _as_u64(phash_flip) if mirror else None
    df = _as_u64(dhash_flip) if mirror else None
    p, d, img, flip = _codes(phash, dhash, pf, df, mirror)
    tp, td = int(phash_threshold), int(dhash_threshold)

    def verify(a, b):
        return _verify(a, b, p, d, img, flip, tp, td)

    found: list[np.ndarray] = []
    # Identical (phash, dhash) entries are duplicates whatever the thresholds; collapsing them first
    # keeps a flood of identical images (blank frames, the same file N times) from making a bucket
    # with N^2 candidate pairs.
    pd = np.stack([p, d], 1)
    _, first, inverse = np.unique(pd, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    same = first[inverse] != np.arange(len(p))
    if same.any():
        a, b = first[inverse][same], np.flatnonzero(same)
        ok = (img[a] != img[b]) & ~(flip[a] & flip[b])
        found.append(np.stack([img[a[ok]], img[b[ok]]], 1))
    uniq = np.sort(first)
    if n <= brute_force_max:
        m, block = len(uniq), 2048
        for s in range(0, m, block):
            a_idx = uniq[s:s + block]
            b_idx = uniq[s:]
            dist_p = hamming(p[a_idx][:, None], p[b_idx][None, :])
            dist_d = hamming(d[a_idx][:, None], d[b_idx][None, :])
            ia, ib = np.nonzero((dist_p <= tp) & (dist_d <= td))
            a, b = a_idx[ia], b_idx[ib]
            ok = (img[a] != img[b]) & ~(flip[a] & flip[b])
            found.append(np.stack([img[a[ok]], img[b[ok]]], 1))
            if progress:
                progress(len(a_idx))
    else:
        radius = auto_radius(len(uniq), tp, index_budget_s) if index_radius == 'auto' else min(int(index_radius), tp)
        n_chunks, _, _ = plan_index(len(uniq), radius)
        chunks = _chunk_masks(n_chunks)
        masks = [sum(c) for c in itertools.combinations(chunks, n_chunks - radius)]
        pu = p[uniq]

        def one(mask):
            res = _bucket_pairs(pu & np.uint64(mask), pu, tp, lambda a, b: verify(uniq[a], uniq[b]))
            if progress:
                progress(1)
            return res
        with ThreadPoolExecutor(max(1, int(threads))) as ex:
            for res in ex.map(one, masks):
                found.extend(res)
    if not found:
        return np.zeros((0, 2), np.int64)
    pairs = np.concatenate(found).astype(np.int64)
    return np.sort(pairs, axis=1)


def clusters(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component label per item (union-find over the pairs)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    g = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(g, directed=False)[1]


def choose_kept(labels: np.ndarray, pixels, file_size, names) -> np.ndarray:
    """Index of the kept item for each item's cluster: most pixels, then largest file, then
    smallest name (deterministic)."""
    labels = np.asarray(labels)
    order = sorted(range(len(labels)), key=lambda i: (-int(pixels[i]), -int(file_size[i]), str(names[i])))
    best: dict[int, int] = {}
    for i in order:
        best.setdefault(int(labels[i]), i)
    return np.array([best[int(l)] for l in labels], np.int64)


# ----------------------------------------------------------------------------------------------
# stage
# ----------------------------------------------------------------------------------------------

def _out_name(path: Path, input_dir: Path) -> str:
    rel = path.relative_to(input_dir).as_posix() if path.is_relative_to(input_dir) else str(path)
    tag = hashlib.sha1(rel.encode()).hexdigest()[:8]
    ext = path.suffix.lower() if path.suffix else '.img'
    return f'{path.stem}_{tag}{ext}'


def _hash_file(path: Path) -> dict:
    """Hashes + size info for one file, or {'error': reason}."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            im.load()
            w, h = im.size
            hashes = hash_image(im)
    except Exception as e:  # noqa: BLE001 -- any decode failure becomes a record, never a crash
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        return {'error': f'unreadable image: {reason}'}
    return {**{k: f'{v:016x}' for k, v in hashes.items()}, 'width': w, 'height': h,
            'file_size': path.stat().st_size}


def run(input_dir: Path, output_dir: Path, cfg: dict | None = None) -> dict:
    """Deduplicate the images of input_dir into output_dir (kept files copied); see module doc."""
    from data_prep import report as rp
    unknown = set(cfg or {}) - set(DEFAULTS)
    if unknown:  # a typo must not silently fall back to a default
        raise ValueError(f'dedup: unknown config keys {sorted(unknown)}')
    cfg = {**DEFAULTS, **dict(cfg or {})}
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f'{input_dir}: input folder does not exist')
    rep = rp.StageReport.open(output_dir, 'dedup')
    files = rp.stage_inputs(input_dir, output_dir)

    # 1) hashes (resumable: cached in each record's extra, recomputed only for new inputs)
    info: dict[str, dict] = {}
    todo = []
    for f in files:
        r = rep.get(str(f))
        if r is not None and (r.extra.get('phash') or r.status == 'rejected'):
            info[str(f)] = dict(r.extra) if r.status != 'rejected' else {'error': r.reason}
        else:
            todo.append(f)
    for f in rp.progress(todo, total=len(todo), desc='dedup: hashing'):
        h = _hash_file(f)
        info[str(f)] = h
        if 'error' in h:
            rep.add(rp.FileRecord(path=str(f), status='rejected', reason=h['error']))
        else:
            # provisional record so a crash keeps the hash; the final status is set below
            rep.add(rp.FileRecord(path=str(f), status='kept', extra={**h, 'sidecar': rp.read_sidecar(f)}))

    # 2) search + cluster over all readable inputs (cheap; always redone so new inputs can merge)
    good = [f for f in files if 'error' not in info[str(f)]]
    names = [str(f) for f in good]
    arr = {k: np.array([int(info[s][k], 16) for s in names], np.uint64) for k in _HASH_KEYS}
    pairs = find_pairs(arr['phash'], arr['dhash'], arr['phash_flip'], arr['dhash_flip'],
                       phash_threshold=cfg['phash_threshold'], dhash_threshold=cfg['dhash_threshold'],
                       mirror=cfg['mirror'], brute_force_max=cfg['brute_force_max'],
                       index_radius=cfg['index_radius'], index_budget_s=cfg['index_budget_s'],
                       threads=cfg['threads'])
    labels = clusters(len(names), pairs)
    pixels = [info[s]['width'] * info[s]['height'] for s in names]
    sizes = [info[s]['file_size'] for s in names]
    kept = choose_kept(labels, pixels, sizes, names)

    # 3) records + copies
    n_dup = 0
    for i, f in enumerate(rp.progress(good, total=len(good), desc='dedup: writing')):
        extra = {k: info[names[i]][k] for k in (*_HASH_KEYS, 'width', 'height', 'file_size')}
        side = info[names[i]].get('sidecar') or rp.read_sidecar(f)
        extra.update({k: v for k, v in side.items() if k in ('kind', 'source', 'url', 'source_url')})
        extra['cluster'] = int(labels[i])
        if kept[i] == i:
            out = None
            if cfg['copy_kept']:
                out = output_dir / _out_name(f, input_dir)
                if not out.exists() or out.stat().st_size != f.stat().st_size:
                    tmp = out.with_name(out.name + '.tmp')
                    shutil.copyfile(f, tmp); os.replace(tmp, out)
                if side:
                    (out.parent / (out.name + '.json')).write_text(json.dumps(side, indent=1))
                out = str(out.resolve())
            rep.add(rp.FileRecord(path=str(f), status='kept', output=out, extra=extra))
        else:
            n_dup += 1
            prev = rep.get(str(f))
            if prev is not None and prev.output and Path(prev.output).is_file():
                # kept on an earlier run, a duplicate now (a bigger copy arrived): retract our copy
                Path(prev.output).unlink()
                Path(prev.output + '.json').unlink(missing_ok=True)
            ham = bin(int(extra['phash'], 16) ^ int(info[names[kept[i]]]['phash'], 16)).count('1')
            hamf = bin(int(extra['phash'], 16) ^ int(info[names[kept[i]]]['phash_flip'], 16)).count('1')
            rep.add(rp.FileRecord(path=str(f), status='duplicate',
                                  reason=f'near-duplicate (pHash distance {min(ham, hamf)}'
                                         f'{", mirrored" if hamf < ham else ""})',
                                  duplicate_of=names[kept[i]], extra=extra))
    n_bad = sum(1 for f in files if 'error' in info[str(f)])
    summary = {'stage': 'dedup', 'inputs': len(files), 'kept': len(good) - n_dup, 'duplicates': n_dup,
               'rejected': n_bad, 'clusters_with_duplicates': int(len(set(labels[kept != np.arange(len(kept))].tolist()))),
               'pairs': int(len(pairs)), 'config': {k: cfg[k] for k in DEFAULTS}}
    rep.save(summary)
    try:
        rp.write_contact_sheets(rep.records(), output_dir / 'report', 'dedup')
    except Exception as e:  # noqa: BLE001 -- a sheet failure must not lose the stage's work
        summary['contact_sheet_error'] = str(e)
    return summary
