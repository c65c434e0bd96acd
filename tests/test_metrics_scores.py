"""FID / KID / IS / precision-recall against the pytorch-fid fixture numbers and exact identities; stats files."""
import json

import numpy as np
import pytest

from stylegan_jax.metrics import scores, stats
from stylegan_jax.metrics.inception import MetricsError


@pytest.fixture(scope='module')
def fx(fixtures_dir):
    d = fixtures_dir / 'inception'
    exp = np.load(d / 'expected.npz')
    return {k: exp[k] for k in exp.files}, json.loads((d / 'expected.json').read_text())


@pytest.fixture(scope='module')
def fc(fixtures_dir):
    """fc.weight [1008, 2048] and fc.bias of the fixture weights (float64)."""
    from stylegan_jax.convert.unpickle import load_torch

    sd = load_torch(fixtures_dir / 'inception' / 'pt_inception-random.pth')
    return np.asarray(sd['fc.weight'], np.float64), np.asarray(sd['fc.bias'], np.float64)


def test_fid_matches_pytorch_fid(fx):
    feats, exp = fx
    got = scores.fid_from_features(feats['feats_real'], feats['feats_fake'])
    assert got == pytest.approx(exp['fid'], rel=1e-3)


def test_fid_methods_agree_on_rank_deficient_fixture(fx):
    """eigh (stats only), sqrtm (pytorch-fid's code) and the low-rank form on 48 x 256-d slices."""
    feats, _ = fx
    r, f = feats['feats_real'][:, :256], feats['feats_fake'][:, :256]
    low_rank = scores.fid_from_features(r, f)
    assert scores.fid_from_features(r, f, method='eigh') == pytest.approx(low_rank, rel=1e-9)
    # scipy's sqrtm of the singular product is only good to ~2e-6 here (its round-off, not ours).
    assert scores.fid_from_features(r, f, method='sqrtm') == pytest.approx(low_rank, rel=1e-5)
    # A set against itself: exactly 0 up to round-off (pytorch-fid's sqrtm gives -1.2e-3 on the full set).
    assert abs(scores.fid_from_features(r, r, method='eigh')) < 1e-9
    assert abs(scores.fid_from_features(feats['feats_real'], feats['feats_real'])) < 1e-9


def test_fid_closed_forms():
    rng = np.random.default_rng(0)
    a, b = rng.random(5) + 0.1, rng.random(5) + 0.1
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    # Diagonal covariances: |mu1-mu2|^2 + sum (sqrt(a) - sqrt(b))^2.
    want = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    for method in ('eigh', 'sqrtm'):
        assert scores.frechet_distance(mu1, np.diag(a), mu2, np.diag(b), method) == pytest.approx(want, rel=1e-10)
    # Rotating both Gaussians by the same orthogonal matrix changes nothing.
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    got = scores.frechet_distance(q @ mu1, q @ np.diag(a) @ q.T, q @ mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(want, rel=1e-9)
    # Shifting a feature set moves FID by exactly the squared shift.
    x = rng.normal(size=(300, 8))
    shift = rng.normal(size=8)
    assert scores.fid_from_features(x, x + shift) == pytest.approx(shift @ shift, rel=1e-9)
    with pytest.raises(ValueError, match='mismatched'):
        scores.frechet_distance(mu1, np.diag(a), mu2[:4], np.diag(b))


def test_kid_matches_fixture_and_brute_force(fx):
    feats, exp = fx
    mean, std = scores.kid(feats['feats_real'], feats['feats_fake'])
    assert mean == pytest.approx(exp['kid_mean'], abs=1e-4)
    assert std < 1e-9  # every subset is the whole set here
    # Unbiased MMD^2 spelled out with explicit pair loops on a tiny set.
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)) + 0.3
    k = lambda u, v: (u @ v / 4 + 1) ** 3  # noqa: E731
    m = 6
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert scores.mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kid_subsets():
    rng = np.random.default_rng(2)
    same_a, same_b = rng.normal(size=(400, 16)), rng.normal(size=(300, 16))
    mean, std = scores.kid(same_a, same_b, num_subsets=20, max_subset_size=100, seed=0)
    assert std > 0  # subsets of 100 out of 300/400 differ
    assert abs(mean) < 3 * std  # unbiased: ~0 for the same distribution
    far_mean, _ = scores.kid(same_a, same_b + 2.0, num_subsets=20, max_subset_size=100, seed=0)
    assert far_mean > 10 * std
    assert scores.kid(same_a, same_b, 20, 100, seed=0) == scores.kid(same_a, same_b, 20, 100, seed=0)


def test_inception_score_matches_fixture(fx, fc):
    feats, exp = fx
    w, b = fc
    unbiased = feats['feats_fake'] @ w.T
    np.testing.assert_allclose(unbiased + b, feats['logits_fake'], rtol=0, atol=1e-4)  # fixture: float32
    mean, std = scores.inception_score(unbiased, 10)
    assert mean == pytest.approx(exp['is_mean'], rel=1e-3)
    assert std == pytest.approx(exp['is_std'], rel=1e-3)
    assert scores.inception_score(unbiased, 1)[0] == pytest.approx(exp['is_1split'], rel=1e-3)
    assert scores.inception_score(feats['logits_fake'], 10)[0] == pytest.approx(exp['is_with_bias_mean'], rel=1e-3)


@pytest.mark.parametrize('k', [1, 3, 7])
def test_inception_score_identities(k):
    # Uniform predictions: p(y|x) = p(y), KL 0, IS 1.
    assert scores.inception_score(np.zeros((20, 1008)), 2) == pytest.approx((1.0, 0.0), abs=1e-12)
    # Confident one-hot predictions spread evenly over k classes: IS = k.
    logits = np.full((10 * k, 1008), -1e4)
    logits[np.arange(10 * k), np.arange(10 * k) % k] = 0.0
    mean, std = scores.inception_score(logits, 1)
    assert mean == pytest.approx(k, rel=1e-9) and std == 0.0


def test_precision_recall():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 5))
    assert scores.precision_recall(x, x) == (1.0, 1.0)
    assert scores.precision_recall(x, x + 100.0) == (0.0, 0.0)
    # Brute force against the definition on random sets.
    y = rng.normal(size=(50, 5)) * 1.5 + 0.5
    def radii(a, k=3):
        d = np.linalg.norm(a[:, None] - a[None], axis=-1)
        return np.sort(d, axis=1)[:, k]
    def inside(ref, q):
        d = np.linalg.norm(q[:, None] - ref[None], axis=-1)
        return (d <= radii(ref)[None]).any(axis=1).mean()
    p, r = scores.precision_recall(x, y, k=3, block=7)
    assert (p, r) == (pytest.approx(inside(x, y)), pytest.approx(inside(y, x)))
    assert 0 < p < 1 and 0 < r < 1


def test_stats_round_trip_and_errors(tmp_path, fx):
    feats, _ = fx
    st = stats.FeatureStats.from_features(feats['feats_real'], {'source': 'fixture'})
    np.testing.assert_allclose(st.sigma, np.cov(feats['feats_real'], rowvar=False), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(st.mu, feats['feats_real'].mean(0), rtol=1e-12)
    path = st.save(tmp_path / 'real.npz')
    back = stats.FeatureStats.load(path)
    assert np.array_equal(back.mu, st.mu) and np.array_equal(back.sigma, st.sigma)
    assert np.array_equal(back.features, feats['feats_real'].astype(np.float32))
    assert back.num_images == 48 and back.meta['source'] == 'fixture' and back.has_all_features
    sub = stats.FeatureStats.from_features(feats['feats_real'], max_features=10)
    assert sub.features.shape == (10, 2048) and not sub.has_all_features and np.array_equal(sub.mu, st.mu)
    (tmp_path / 'junk.npz').write_bytes(b'not a zip')
    with pytest.raises(MetricsError, match='junk.npz'):
        stats.FeatureStats.load(tmp_path / 'junk.npz')
    np.savez(tmp_path / 'other.npz', a=np.zeros(3))
    with pytest.raises(MetricsError, match='missing mu, sigma, meta'):
        stats.FeatureStats.load(tmp_path / 'other.npz')


class CountingExtractor:
    """Stand-in for FeatureExtractor: features = per-image channel means tiled; counts images seen."""
    batch_size = 4

    def __init__(self):
        self.seen = 0

    def extract(self, batches, total=None, progress=True, desc='', keys=('pool',)):
        out = []
        for b in batches:
            self.seen += len(b)
            m = np.asarray(b, np.float32).mean(axis=(1, 2))  # [b, 3]
            out.append(np.tile(m, (1, 8)) + np.arange(24, dtype=np.float32) * 0.01)
        return {'pool': np.concatenate(out)}


def test_stats_cache_hits_and_invalidates(tmp_path):
    from PIL import Image

    from stylegan_jax.metrics.sources import FolderSource

    folder = tmp_path / 'imgs'
    folder.mkdir()
    rng = np.random.default_rng(4)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f'{i}.png')
    ex = CountingExtractor()
    cache = tmp_path / 'cache'
    a = stats.compute_stats(FolderSource(folder), ex, 'w1', stats_dir=cache, progress=False)
    assert ex.seen == 6 and not a.meta['from_cache'] and len(list(cache.glob('*.npz'))) == 1
    b = stats.compute_stats(FolderSource(folder), ex, 'w1', stats_dir=cache, progress=False)
    assert ex.seen == 6 and b.meta['from_cache'] and np.array_equal(a.sigma, b.sigma)
    stats.compute_stats(FolderSource(folder), ex, 'w2', stats_dir=cache, progress=False)  # other weights
    assert ex.seen == 12
    stats.compute_stats(FolderSource(folder), ex, 'w1', num=4, stats_dir=cache, progress=False)  # other count
    assert ex.seen == 16
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / '6.png')  # the folder changed
    c = stats.compute_stats(FolderSource(folder), ex, 'w1', stats_dir=cache, progress=False)
    assert ex.seen == 23 and c.num_images == 7
