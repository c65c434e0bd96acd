"""Fixtures the creator-tool tests share: an isolated cache per test and the sg2ada fixture's Sampler."""
import pytest


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Converted checkpoints and compiled code go to this test's tmp dir; no persistent compile cache."""
    monkeypatch.setenv('STYLEGAN_JAX_CACHE', str(tmp_path / 'cache'))
    monkeypatch.setenv('STYLEGAN_JAX_NO_COMPILE_CACHE', '1')


@pytest.fixture(scope='module')
def sampler(fixtures_dir):
    from stylegan_jax.sample import Sampler
    return Sampler.from_checkpoint(fixtures_dir / 'sg2ada' / 'network-snapshot.pkl')
