"""Stages `unique` and `dedup`: near-duplicate removal with perceptual hashes, at scale.

The same module runs twice in ``data-prep all``: as ``unique`` on the cleaned source images (before
faces: mirrored, resized, recompressed and recoloured reposts are 0-6 pHash bits apart there) and as
``dedup`` on the aligned face crops (reposts that were cropped or rotated differ as whole pictures,
but their aligned crops of the same face nearly coincide).

Every image gets pHash and dHash (64 bits each) of the image and of its x-flipped copy (so a
mirrored copy matches directly), plus a colour layout: the mean opponent chroma (R-G, (R+G)/2-B) of a
4x4 grid. Two images are near-duplicates when, in one orientation,

    hamming(pHash) <= phash_threshold  and  hamming(dHash) <= dhash_threshold
    and colour distance <= colour_threshold

(pHash finds, dHash confirms, the colour check keeps faces that differ mainly in colour apart). The
colour distance is the mean over the 16 cells of the chroma difference after removing the mean
difference, so a global grade or tint of a repost costs little while another hair, skin or
background colour costs much.

Search. Up to ``brute_force_max`` images are compared all-pairs in vectorised blocks. Larger sets
use multi-index hashing on the pHash: the 64 bits are split into ``n`` chunks; a pair within Hamming
distance ``r`` differs in at most ``r`` chunks, so it agrees exactly on some union of ``n - r``
chunks. One table per such union (``C(n, r)`` tables) buckets the codes with a numpy sort; every pair
inside a bucket is a candidate, verified with a vectorised popcount. The radius is always the full
``phash_threshold``: the search is exact at any size (``n`` is chosen to minimise the work).

Clusters are built around a representative, never as connected components (a chain of small steps
-- a crossfade -- would join two different people): images are taken best first, each unassigned
image becomes a representative and takes every unassigned image within the thresholds of it. The
best copy is the one with the most *source* pixels (the crop side in the source image for face
crops, the image size for source images; carried in the sidecars), then the best quality (lossless
over JPEG by its estimated quality over palette images / GIF), then the smallest path.
"""
from __future__ import annotations

import hashlib
import itertools
import math
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from data_prep import pool
from data_prep.report import FileRecord, StageRun, load_sidecar, progress, read_sidecar, run_stage, write_sidecar

STAGE = 'dedup'

DEFAULTS: dict = {
    # pHash Hamming distance (of 64 bits) at or below which two face crops are duplicates. Aligned
    # crops of reposts (mirrored, resized, q40, 5% cropped, 4 degrees rotated, colour-graded) of 32
    # real photos: 0-8; different LFW people: 10 and up (a 256 px crop of one and a repost of another
    # came to 10 / dHash 11); drawn faces from one template 6 and up (the colour check keeps those
    # apart). README: dedup table.
    'phash_threshold': 8,
    'dhash_threshold': 12,     # dHash confirmation, same orientation: reposts' crops 0-7
    # colour-layout distance (mean cell chroma difference after removing a global shift): reposts'
    # crops 0-6 (colour-graded the most); drawn faces that differ in hair / skin / background >= 11
    'colour_threshold': 8.0,
    'mirror': True,            # also match x-flipped copies
    'brute_force_max': 6000,   # up to this many images: exact all-pairs comparison, else the index
    'threads': 2,              # index tables are searched in parallel (numpy releases the GIL)
    'workers': 0,              # hashing processes; 0 = os.cpu_count(); small sets hash in-process
    'copy_kept': True,         # copy kept files (and their sidecars) into OUTPUT
}
# Whole source images (stage 'unique'): mirrored / resized / q40 reposts are 0-2 bits apart,
# colour-graded 0-6 (dHash 0-5); different pictures of the same layout (padded LFW portraits) come
# as close as 6-8 bits (dHash 16-22). Cropped and rotated reposts (8-16 bits) are left to the
# aligned crops. Kept images are not copied (faces reads them where clean wrote them).
STAGE_DEFAULTS = {'dedup': DEFAULTS,
                  'unique': {**DEFAULTS, 'phash_threshold': 6, 'dhash_threshold': 12, 'copy_kept': False}}
VOLATILE = ('threads', 'workers')
HASH_VERSION = 2               # records hashed by another version are hashed again
_HASH_KEYS = ('phash', 'dhash', 'phash_flip', 'dhash_flip')
_GRID = 4                      # colour layout cells per side


# ----------------------------------------------------------------------------------------------
# hashing and copy quality
# ----------------------------------------------------------------------------------------------

def _bits_to_int(bits: np.ndarray) -> int:
    """Row-major boolean hash matrix -> unsigned int (first bit most significant)."""
    return int.from_bytes(np.packbits(np.asarray(bits, bool).ravel()).tobytes(), 'big')


def colour_layout(img) -> np.ndarray:
    """(4, 4, 2) int8: mean opponent chroma (R-G, (R+G)/2-B), halved, of a 4x4 grid of a PIL image."""
    from PIL import Image
    x = np.asarray(img.convert('RGB').resize((_GRID, _GRID), Image.Resampling.BOX), np.float64)
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    return np.clip(np.round(np.stack([rg, yb], -1) / 2), -127, 127).astype(np.int8)


def hash_image(img) -> dict:
    """Perceptual hashes of a PIL image: phash, dhash and those of the x-flipped image (64-bit ints),
    and ``colour``: the colour layout as 64 hex digits (the mirror's is its column flip)."""
    import imagehash
    from PIL import ImageOps
    img = img.convert('RGB')
    flipped = ImageOps.mirror(img)
    return {'phash': _bits_to_int(imagehash.phash(img).hash),
            'dhash': _bits_to_int(imagehash.dhash(img).hash),
            'phash_flip': _bits_to_int(imagehash.phash(flipped).hash),
            'dhash_flip': _bits_to_int(imagehash.dhash(flipped).hash),
            'colour': colour_layout(img).tobytes().hex()}


def colour_array(hexes) -> np.ndarray:
    """(N, 4, 4, 2) int8 colour layouts from their hex strings."""
    return np.frombuffer(bytes.fromhex(''.join(hexes)), np.int8).reshape(-1, _GRID, _GRID, 2)


def colour_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of colour layouts (..., 4, 4, 2): mean cell chroma difference after removing the
    mean difference (a global tint / grade)."""
    d = a.astype(np.float32) - b.astype(np.float32)
    d -= d.mean(axis=(-3, -2), keepdims=True)
    return np.sqrt((d * d).sum(-1)).mean(axis=(-2, -1))


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise Hamming distance of uint64 arrays (broadcasting)."""
    return np.bitwise_count(np.bitwise_xor(a, b))


# IJG's standard luminance quantisation table (JPEG Annex K): libjpeg scales it by the quality
_STD_LUMA_SUM = sum((16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57,
                     69, 56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55,
                     64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99))


def jpeg_quality(im) -> int | None:
    """Estimated libjpeg quality (1-100) of an opened JPEG from its luminance table; None otherwise."""
    q = getattr(im, 'quantization', None) if getattr(im, 'format', None) in ('JPEG', 'MPO') else None
    if not q or 0 not in q:
        return None
    scale = 100.0 * sum(q[0]) / _STD_LUMA_SUM   # libjpeg: scale = 5000/Q (Q < 50) or 200 - 2Q
    quality = 5000.0 / scale if scale > 100 else (200.0 - scale) / 2.0
    return int(min(100, max(1, round(quality))))


def quality_rank(fmt: str | None, mode: str | None, jpeg_q: int | None) -> int:
    """How faithful a copy's encoding is: 101 lossless colour, JPEG by its quality, 80 other lossy
    formats (WebP), 5 grayscale, 0 palette images and GIF (256 colours)."""
    fmt, mode = (fmt or '').upper(), (mode or '').upper()
    if fmt == 'GIF' or mode in ('P', 'PA', '1'):
        return 0
    if mode in ('L', 'LA', 'I', 'I;16', 'F'):
        return 5
    if fmt in ('JPEG', 'MPO'):
        return int(jpeg_q or 75)
    if fmt in ('PNG', 'TIFF', 'BMP', 'PPM', 'TGA'):
        return 101
    return 80


def source_info(side: dict, width: int, height: int, fmt: str | None, mode: str | None,
                jpeg_q: int | None) -> tuple[int, int]:
    """(source pixels, quality rank) of a copy: face crops carry the crop's side in the source image
    and the source's encoding (``face``), clean's outputs the source's size and encoding (``clean``,
    which wins: it saw the downloaded file); otherwise the file's own."""
    clean = side.get('clean') if isinstance(side.get('clean'), dict) else {}
    face = side.get('face') if isinstance(side.get('face'), dict) else {}
    if face.get('source_format') and not clean.get('format'):
        clean = {'format': face['source_format'], 'mode': face.get('source_mode'),
                 'jpeg_quality': face.get('source_jpeg_quality')}
    if face.get('source_side'):
        pixels = int(round(float(face['source_side']) ** 2))
    elif clean.get('width') and clean.get('height'):
        pixels = int(clean['width']) * int(clean['height'])
    else:
        pixels = int(width) * int(height)
    if clean.get('format'):
        fmt, mode, jpeg_q = clean.get('format'), clean.get('mode'), clean.get('jpeg_quality')
    return pixels, quality_rank(fmt, mode, jpeg_q)


def hash_file(path) -> dict:
    """Hashes, size and copy quality of one file, or {'error': reason}. JPEGs are decoded at a reduced
    scale (libjpeg draft, still >= 256 px): the hashes look at 32x32 and 4x4."""
    from PIL import Image, ImageOps
    path = Path(path)
    side, warnings = load_sidecar(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            fmt, mode, q = im.format, im.mode, jpeg_quality(im)
            im.draft('RGB', (256, 256))
            im.load()
            hashes = hash_image(ImageOps.exif_transpose(im))
    except Exception as e:  # noqa: BLE001 -- any decode failure becomes a record, never a crash
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        return {'error': f'unreadable image: {reason}', 'warnings': warnings}
    pixels, rank = source_info(side, w, h, fmt, mode, q)
    out = {**{k: f'{hashes[k]:016x}' for k in _HASH_KEYS}, 'colour': hashes['colour'], 'width': w,
           'height': h, 'source_pixels': pixels, 'quality': rank, 'hash_v': HASH_VERSION,
           **{k: side[k] for k in ('kind', 'source', 'url', 'source_url') if k in side}}
    if warnings:
        out['warnings'] = warnings
    return out


# ----------------------------------------------------------------------------------------------
# pair search
# ----------------------------------------------------------------------------------------------

def _as_u64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.uint64).ravel()


class _Entries:
    """Image i at row i (direct) and, with mirror, at row N + i (its flipped hashes and colours)."""

    def __init__(self, phash, dhash, phash_flip, dhash_flip, colour, mirror):
        n = len(phash)
        self.p = np.concatenate([phash, phash_flip]) if mirror else phash
        self.d = np.concatenate([dhash, dhash_flip]) if mirror else dhash
        self.img = np.concatenate([np.arange(n), np.arange(n)]) if mirror else np.arange(n)
        self.flip = np.concatenate([np.zeros(n, bool), np.ones(n, bool)]) if mirror else np.zeros(n, bool)
        self.c = None
        if colour is not None:
            colour = np.asarray(colour).reshape(n, _GRID, _GRID, 2)
            self.c = np.concatenate([colour, colour[:, :, ::-1]]) if mirror else colour

    def verify(self, a, b, tp, td, tc):
        """Entry pairs that are two different images, not both flipped, within all thresholds ->
        image index pairs."""
        ok = (self.img[a] != self.img[b]) & ~(self.flip[a] & self.flip[b])
        a, b = a[ok], b[ok]
        ok = (hamming(self.p[a], self.p[b]) <= tp) & (hamming(self.d[a], self.d[b]) <= td)
        a, b = a[ok], b[ok]
        if self.c is not None and tc is not None and len(a):
            ok = colour_distance(self.c[a], self.c[b]) <= tc
            a, b = a[ok], b[ok]
        return np.stack([self.img[a], self.img[b]], 1)


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
    (n_chunks, n_tables, estimated single-core seconds)."""
    best = None
    for n in range(radius + 1, 65):
        tables = math.comb(n, radius)
        if tables > 20000:
            break
        bits = 64 * (n - radius) / n
        cost = tables * (1.5e-7 * n_entries + 4e-8 * n_entries ** 2 / 2 / 2 ** bits)
        if best is None or cost < best[2]:
            best = (n, tables, cost)
    return best


def find_pairs(phash, dhash, phash_flip=None, dhash_flip=None, *, colour=None, phash_threshold: int = 8,
               dhash_threshold: int = 16, colour_threshold: float | None = None, mirror: bool = True,
               brute_force_max: int = 6000, threads: int = 2, progress=None) -> np.ndarray:
    """Near-duplicate image pairs (E, 2) int64 with i < j (may contain repeats), exact at any size.

    ``colour``: (N, 4, 4, 2) colour layouts; with ``colour_threshold`` they confirm every pair.
    ``progress``: optional callable(n) for a progress bar."""
    phash, dhash = _as_u64(phash), _as_u64(dhash)
    n = len(phash)
    if mirror and (phash_flip is None or dhash_flip is None):
        raise ValueError('mirror=True needs phash_flip and dhash_flip')
    if n < 2:
        return np.zeros((0, 2), np.int64)
    e = _Entries(phash, dhash, _as_u64(phash_flip) if mirror else None, _as_u64(dhash_flip) if mirror else None,
                 colour, mirror)
    tp, td = int(phash_threshold), int(dhash_threshold)
    tc = None if colour_threshold is None else float(colour_threshold)

    def verify(a, b):
        return e.verify(a, b, tp, td, tc)

    found: list[np.ndarray] = []
    # Identical entries (same pHash, dHash and colour layout) collapse to one for the search (a flood
    # of identical images -- blank frames, the same file N times -- would make a bucket with N^2
    # candidate pairs); each copy is paired with its first occurrence. ``identity_classes`` gives the
    # same classes to the caller, whose clustering treats a class as one image.
    key = np.stack([e.p, e.d], 1) if e.c is None else np.concatenate(
        [np.stack([e.p, e.d], 1), e.c.reshape(len(e.p), -1).view(np.uint8).astype(np.uint64)], 1)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    same = first[inverse] != np.arange(len(e.p))
    if same.any():
        found.append(verify(first[inverse][same], np.flatnonzero(same)))
    uniq = np.sort(first)
    if n <= brute_force_max:
        m, block = len(uniq), 2048
        for s in range(0, m, block):
            a_idx = uniq[s:s + block]
            b_idx = uniq[s:]
            ia, ib = np.nonzero(hamming(e.p[a_idx][:, None], e.p[b_idx][None, :]) <= tp)
            found.append(verify(a_idx[ia], b_idx[ib]))
            if progress:
                progress(len(a_idx))
    else:
        n_chunks, _, _ = plan_index(len(uniq), tp)
        chunks = _chunk_masks(n_chunks)
        masks = [sum(c) for c in itertools.combinations(chunks, n_chunks - tp)]
        pu = e.p[uniq]

        def one(mask):
            res = _bucket_pairs(pu & np.uint64(mask), pu, tp, lambda a, b: verify(uniq[a], uniq[b]))
            if progress:
                progress(1)
            return res
        with ThreadPoolExecutor(max(1, int(threads))) as ex:
            for res in ex.map(one, masks):
                found.extend(res)
    found = [f for f in found if len(f)]
    if not found:
        return np.zeros((0, 2), np.int64)
    return np.sort(np.concatenate(found).astype(np.int64), axis=1)


def rank_order(pixels, quality, names, tie: float = 0.05) -> np.ndarray:
    """Indices best copy first: most source pixels, then best quality, then smallest name. Copies
    within ``tie`` (5%) of the most pixels of their group count as equal, so their quality decides
    (a crop from a 4-degree rotated repost may have a few source pixels more than the original's)."""
    by_pixels = sorted(range(len(names)), key=lambda i: (-int(pixels[i]), str(names[i])))
    out, group, top = [], [], None
    for i in by_pixels:
        if top is not None and int(pixels[i]) >= (1.0 - tie) * top:
            group.append(i)
            continue
        out += sorted(group, key=lambda j: (-int(quality[j]), str(names[j])))
        group, top = [i], int(pixels[i])
    out += sorted(group, key=lambda j: (-int(quality[j]), str(names[j])))
    return np.asarray(out, np.int64)


def identity_classes(phash, dhash, colour=None) -> np.ndarray:
    """Class id per image: images with identical hashes (and colour layout) share one."""
    key = np.stack([_as_u64(phash), _as_u64(dhash)], 1)
    if colour is not None:
        key = np.concatenate([key, np.asarray(colour).reshape(len(key), -1).view(np.uint8).astype(np.uint64)], 1)
    return np.unique(key, axis=0, return_inverse=True)[1].ravel().astype(np.int64)


def representative_clusters(n: int, pairs: np.ndarray, order: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray:
    """For each item, the index of the representative it belongs to. Items are taken in ``order``
    (best first); an item not yet assigned becomes a representative and takes every unassigned item
    paired with it. So every member is within the thresholds of its representative (no chaining).
    ``classes`` (see :func:`identity_classes`): identical items move together, as one item whose
    representative is the best of them."""
    order = np.asarray(order, np.int64)
    classes = np.arange(n, dtype=np.int64) if classes is None else np.asarray(classes, np.int64)
    m = int(classes.max()) + 1 if n else 0
    pos = np.empty(n, np.int64)
    pos[order] = np.arange(n)
    best = np.full(m, -1, np.int64)           # best member of each class
    for i in order[::-1]:
        best[classes[i]] = i
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    cp = classes[pairs] if len(pairs) else np.zeros((0, 2), np.int64)
    cp = cp[cp[:, 0] != cp[:, 1]]
    rep_c = np.arange(m, dtype=np.int64)
    if len(cp):
        both = np.concatenate([cp, cp[:, ::-1]])
        both = both[np.argsort(both[:, 0], kind='stable')]
        starts = np.searchsorted(both[:, 0], np.arange(m + 1))
        assigned = np.zeros(m, bool)
        linked = np.zeros(m, bool)
        linked[both[:, 0]] = True
        for c in np.argsort(pos[best], kind='stable'):  # classes, best first
            if not linked[c] or assigned[c]:
                continue
            assigned[c] = True
            nb = both[starts[c]:starts[c + 1], 1]
            nb = nb[~assigned[nb]]
            rep_c[nb] = c
            assigned[nb] = True
    return best[rep_c[classes]]


# ----------------------------------------------------------------------------------------------
# stage
# ----------------------------------------------------------------------------------------------

def _out_name(path: Path, input_dir: Path) -> str:
    rel = path.relative_to(input_dir).as_posix() if path.is_relative_to(input_dir) else str(path)
    tag = hashlib.sha1(rel.encode()).hexdigest()[:8]
    ext = path.suffix.lower() if path.suffix else '.img'
    return f'{path.stem}_{tag}{ext}'


def _copy_kept(f: Path, out: Path) -> None:
    if not out.exists() or out.stat().st_size != f.stat().st_size:
        tmp = out.with_name(out.name + '.tmp')
        shutil.copyfile(f, tmp)
        os.replace(tmp, out)
    side = Path(str(f) + '.json')
    if side.is_file():
        try:
            write_sidecar(out, read_sidecar(f))
        except ValueError:  # unreadable sidecar: already a warning on the record; copy it as it is
            shutil.copyfile(side, Path(str(out) + '.json'))


def process(run: StageRun) -> dict:
    """Hash the inputs (cached per unchanged file), search, cluster, write records and copies."""
    cfg = run.settings
    files = run.inputs
    # 1) hashes: reused from the previous record of the very same file, else computed (in parallel)
    info: dict[str, dict] = {}
    todo = []
    for f in files:
        prev = run.previous(f)
        if prev is not None and prev.extra.get('hash_v') == HASH_VERSION:
            info[str(f)] = dict(prev.extra)
        elif prev is not None and prev.status == 'rejected' and str(prev.reason).startswith('unreadable'):
            info[str(f)] = {'error': prev.reason}
        else:
            todo.append(f)
    for f, h in run.work(hash_file, todo, cfg['workers'], desc=f'{run.stage}: hashing', min_per_worker=8):
        info[str(f)] = {'error': f'unreadable image: hashing {h.reason()}'} if isinstance(h, pool.WorkerDied) else h
    run.processed = len(todo)

    # 2) search + cluster over all readable inputs (cheap; always redone so new inputs can merge)
    good = [f for f in files if 'error' not in info[str(f)]]
    names = [str(f) for f in good]
    arr = {k: np.array([int(info[s][k], 16) for s in names], np.uint64) for k in _HASH_KEYS}
    colour = colour_array([info[s]['colour'] for s in names]) if names else None
    pairs = find_pairs(arr['phash'], arr['dhash'], arr['phash_flip'], arr['dhash_flip'], colour=colour,
                       phash_threshold=cfg['phash_threshold'], dhash_threshold=cfg['dhash_threshold'],
                       colour_threshold=cfg['colour_threshold'], mirror=cfg['mirror'],
                       brute_force_max=cfg['brute_force_max'], threads=cfg['threads'])
    order = rank_order([info[s]['source_pixels'] for s in names], [info[s]['quality'] for s in names], names)
    classes = identity_classes(arr['phash'], arr['dhash'], colour if cfg['colour_threshold'] is not None else None)
    rep = representative_clusters(len(names), pairs, order, classes)

    # 3) records + copies
    for f in files:
        h = info[str(f)]
        if 'error' in h:
            run.add(FileRecord(str(f), 'rejected', h['error'], extra={'warnings': h.get('warnings', [])}),
                    count=False)
    n_dup = 0
    for i, f in enumerate(progress(good, total=len(good), desc=f'{run.stage}: writing')):
        extra = {k: v for k, v in info[names[i]].items() if k != 'warnings'}
        extra['warnings'] = info[names[i]].get('warnings', [])
        extra['cluster'] = int(rep[i])
        if rep[i] == i:
            out = f
            if cfg['copy_kept']:
                out = run.output_dir / _out_name(f, run.input_dir)
                _copy_kept(f, out)
            run.add(FileRecord(str(f), 'kept', output=str(out), extra=extra), count=False)
            continue
        n_dup += 1
        k = int(rep[i])
        a, b = info[names[i]], info[names[k]]
        direct = bin(int(a['phash'], 16) ^ int(b['phash'], 16)).count('1')
        mirrored = bin(int(a['phash'], 16) ^ int(b['phash_flip'], 16)).count('1')
        run.add(FileRecord(str(f), 'duplicate', f'near-duplicate (pHash distance {min(direct, mirrored)}'
                                                 f'{", mirrored" if mirrored < direct else ""})',
                           duplicate_of=names[k], extra=extra), count=False)
    return {'clusters_with_duplicates': int(len(set(rep[rep != np.arange(len(rep))].tolist()))),
            'pairs': int(len(pairs))}


def run(input_dir: Path, output_dir: Path, cfg: dict | None = None, stage: str = STAGE) -> dict:
    """Deduplicate the images of input_dir into output_dir (``stage`` 'dedup' or 'unique')."""
    return run_stage(sys.modules[__name__], input_dir, output_dir, cfg, stage=stage)
