"""Shared test set-up: the reference fixtures and 8 virtual CPU devices for pmap tests."""
import os
import pathlib

# Must happen before jax is imported anywhere: lets pmap tests run 8 devices on a CPU.
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=8')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import pytest  # noqa: E402

from stylegan_jax.compile_cache import configure_xla_cpu  # noqa: E402

configure_xla_cpu()  # the XLA:CPU flags every stylegan command runs with (tests and subprocesses alike)

REPO = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = pathlib.Path(os.environ.get('STYLEGAN_JAX_FIXTURES', REPO.parent / 'shared' / 'fixtures'))


@pytest.fixture(scope='session')
def fixtures_dir() -> pathlib.Path:
    """../shared/fixtures (reference outputs of the original PyTorch/TF code); set STYLEGAN_JAX_FIXTURES to move it."""
    if not FIXTURES.is_dir():
        pytest.fail(f'reference fixtures not found at {FIXTURES}: set STYLEGAN_JAX_FIXTURES')
    return FIXTURES
