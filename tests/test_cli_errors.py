"""The one CLI error convention (stylegan_jax.cli_errors) and the compilation cache switch."""
import os
import pickle
import subprocess
import sys
import types

import pytest

from stylegan_jax import cli_errors, compile_cache


def test_user_error_is_one_line_and_exit_1(capsys):
    def main():
        raise cli_errors.CLIError('x.png: not an image\n(details)')
    assert cli_errors.run('prog', main) == 1
    assert capsys.readouterr().err.splitlines() == ['prog: error: x.png: not an image (details)']


def test_os_error_and_ctrl_c(capsys):
    assert cli_errors.run('prog', lambda: open('/nonexistent/file')) == 1
    assert capsys.readouterr().err.startswith("prog: error: [Errno 2] No such file or directory: '/nonexistent")

    def interrupted():
        raise KeyboardInterrupt
    assert cli_errors.run('prog', interrupted) == 130
    assert capsys.readouterr().err.strip() == 'prog: interrupted'


def test_bugs_keep_their_traceback():
    def buggy():
        raise ZeroDivisionError('a bug')
    with pytest.raises(ZeroDivisionError):
        cli_errors.run('prog', buggy)
    with pytest.raises(KeyError):  # a plain ValueError/KeyError from our code is a bug, not a user error
        cli_errors.command('prog')(lambda argv: {}['k'])([])


def test_package_errors_are_cli_errors():
    from stylegan_jax import checkpoint, latents, projector, sample, video
    from stylegan_jax.convert import common, unpickle
    from stylegan_jax.metrics import inception
    for cls in (checkpoint.CheckpointError, common.ConversionError, unpickle.UnsafePickleError,
                unpickle.CheckpointFormatError, inception.MetricsError, sample.SampleError, latents.LatentsError,
                projector.ProjectError, video.VideoError):
        assert issubclass(cls, cli_errors.CLIError), cls


def _fake_sg2ada_pickle(path, img_resolution):
    """A StyleGAN2-ADA-shaped pickle whose generator kwargs NetworkConfig rejects."""
    mod = types.ModuleType('torch_utils.persistence')

    def _reconstruct_persistent_obj(meta):  # pragma: no cover - the allow-list reader never calls it
        raise AssertionError
    _reconstruct_persistent_obj.__qualname__ = '_reconstruct_persistent_obj'
    _reconstruct_persistent_obj.__module__ = 'torch_utils.persistence'
    mod._reconstruct_persistent_obj = _reconstruct_persistent_obj
    sys.modules.setdefault('torch_utils', types.ModuleType('torch_utils'))
    sys.modules['torch_utils.persistence'] = mod

    class Rec:
        def __reduce__(self):
            state = {'_init_kwargs': {'z_dim': 4, 'w_dim': 4, 'c_dim': 0, 'img_resolution': img_resolution,
                                      'img_channels': 3, 'mapping_kwargs': {}, 'synthesis_kwargs': {}},
                     '_parameters': {}, '_buffers': {}, '_modules': {}}
            return mod._reconstruct_persistent_obj, ({'type': 'class', 'version': 6, 'module_src': '',
                                                      'class_name': 'training.networks.Generator', 'state': state},)
    try:
        path.write_bytes(pickle.dumps({'G_ema': Rec()}))
    finally:
        del sys.modules['torch_utils.persistence']


def test_convert_bad_network_config_is_one_line(tmp_path):
    """Today's bug: a ValueError from NetworkConfig (resolution 48) showed a traceback."""
    src = tmp_path / 'odd.pkl'
    _fake_sg2ada_pickle(src, 48)
    r = subprocess.run([sys.executable, '-m', 'stylegan_jax.convert', str(src), '--out', str(tmp_path / 'o')],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f'stylegan-convert: error: {src}: unsupported network configuration: '
        'img_resolution must be a power of two >= 4, got 48')


def test_compile_cache_dir_and_switch(tmp_path, monkeypatch):
    monkeypatch.setenv('STYLEGAN_JAX_NO_COMPILE_CACHE', '1')
    assert compile_cache.enable() is None
    # In a fresh process: the first run writes entries, the second reads them (writes none).
    env = {**os.environ, 'STYLEGAN_JAX_CACHE': str(tmp_path), 'STYLEGAN_JAX_NO_COMPILE_CACHE': ''}
    env.pop('JAX_COMPILATION_CACHE_DIR', None)
    code = ('from stylegan_jax import compile_cache; print(compile_cache.enable()); import jax, jax.numpy as jnp; '
            'jax.jit(lambda x: jnp.tanh(x) @ x.T)(jnp.ones((8, 8))).block_until_ready()')
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == str(tmp_path / 'jax_cache'), out.stderr
    first = sorted(os.listdir(tmp_path / 'jax_cache'))
    assert first
    subprocess.run([sys.executable, '-c', code], env=env, check=True, capture_output=True, timeout=120)
    assert sorted(os.listdir(tmp_path / 'jax_cache')) == first


def test_xla_cpu_flags_added_once_and_user_flags_win(monkeypatch):
    env = {}
    assert compile_cache.configure_xla_cpu(env) == list(compile_cache.XLA_CPU_FLAGS)
    assert compile_cache.configure_xla_cpu(env) == [] and env['XLA_FLAGS'] == ' '.join(compile_cache.XLA_CPU_FLAGS)
    env = {'XLA_FLAGS': '--xla_force_host_platform_device_count=2 --xla_cpu_use_fusion_emitters=true'}
    assert compile_cache.configure_xla_cpu(env) == []  # the user's own setting is kept
    assert env['XLA_FLAGS'].endswith('=true')
    env = {'XLA_FLAGS': '--xla_force_host_platform_device_count=2'}
    compile_cache.configure_xla_cpu(env)
    assert env['XLA_FLAGS'].split() == ['--xla_force_host_platform_device_count=2', *compile_cache.XLA_CPU_FLAGS]
    monkeypatch.setattr(compile_cache, 'XLA_CPU_FLAGS_SINCE', (999, 0))  # a jaxlib older than the flags
    assert compile_cache.configure_xla_cpu({}) == []


def test_xla_accepts_the_cpu_flags():
    """XLA aborts on an unknown flag: a process started the way our commands start must still compute."""
    env = {**os.environ, 'XLA_FLAGS': ''}
    code = ('from stylegan_jax import compile_cache; compile_cache.configure_xla_cpu(); import os, jax, jax.numpy as jnp; '
            'print(os.environ["XLA_FLAGS"]); print(float(jax.jit(lambda x: (x * x).sum())(jnp.ones(4))))')
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split('\n')[:2] == [' '.join(compile_cache.XLA_CPU_FLAGS), '4.0']
