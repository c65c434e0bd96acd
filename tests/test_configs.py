"""Tests for the training config files (configs/*.py): they load, resolve to network and train
configs, map onto the devices they name, and the paper configs equal the reference's documented
numbers. No training and no compilation (network shapes come from jax.eval_shape).
"""
import dataclasses
import importlib.util
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from stylegan_jax import networks
from stylegan_jax.train import loop
from stylegan_jax.train import step as step_lib

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted((REPO / 'configs').glob('*.py'))  # training configs; configs/data/ are data-prep's
NAMES = [p.stem for p in CONFIG_FILES]

# NVlabs/stylegan2-ada-pytorch train.py, setup_training_loop_kwargs(), cfg_specs (copied verbatim):
#   'paper256': dict(ref_gpus=8, kimg=25000, mb=64, mbstd=8, fmaps=0.5, lrate=0.0025, gamma=1, ema=20, ramp=None, map=8)
#   'paper512': dict(ref_gpus=8, kimg=25000, mb=64, mbstd=8, fmaps=1,   lrate=0.0025, gamma=0.5, ema=20, ramp=None, map=8)
# plus what train.py sets for every cfg: channel_base = int(fmaps * 32768), channel_max 512, z/w 512,
# num_fp16_res 4, conv_clamp 256, batch_gpu = mb // ref_gpus, ada_target 0.6 (--aug=ada), augpipe bgc,
# mirror False; training_loop.py: ada_kimg 500, G/D_reg_interval 4/16, ada_interval 4.
REFERENCE_SPECS = {
    'paper256': dict(ref_gpus=8, kimg=25000, mb=64, mbstd=8, fmaps=0.5, lrate=0.0025, gamma=1, ema=20, ramp=None,
                     map=8, res=256),
    'paper512': dict(ref_gpus=8, kimg=25000, mb=64, mbstd=8, fmaps=1, lrate=0.0025, gamma=0.5, ema=20, ramp=None,
                     map=8, res=512),
}


def load(name: str):
    """get_config() of configs/NAME.py, loaded by path as ml_collections' config_flags does."""
    spec = importlib.util.spec_from_file_location(f'_test_config_{name}', REPO / 'configs' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def resolved(name: str):
    c = load(name).get_config()
    cfg = loop.network_config(c)
    return c, cfg, loop.train_config(c, cfg)


def param_counts(cfg: networks.NetworkConfig) -> tuple[int, int]:
    """(G, D) parameter counts from the networks' shapes (eval_shape: no compute, no compilation)."""
    key = jax.random.PRNGKey(0)
    c = jnp.zeros((1, cfg.c_dim)) if cfg.c_dim else None
    g = jax.eval_shape(lambda: networks.Generator(cfg).init({'params': key, 'noise': key}, jnp.zeros((1, cfg.z_dim)), c))
    img = jnp.zeros((1, cfg.img_resolution, cfg.img_resolution, cfg.img_channels))
    d = jax.eval_shape(lambda: networks.Discriminator(cfg).init({'params': key}, img, c))
    return networks.param_count(g['params']), networks.param_count(d['params'])


def test_expected_config_files_exist():
    assert {'demo', 'paper256', 'paper512', 'transfer512', 'colab_tpu', 'colab_gpu'} <= set(NAMES)


@pytest.mark.parametrize('name', NAMES)
def test_config_resolves(name):
    c, cfg, tc = resolved(name)
    # every model key is a NetworkConfig field (network_config raises on unknown keys) and the
    # network is built for the data's resolution
    assert cfg.img_resolution == int(c.data.resolution) == int(c.model.img_resolution)
    assert isinstance(tc, step_lib.TrainConfig)
    assert tc.batch == int(c.train.batch) and tc.batch > 0
    assert tc.batch % (tc.batch_gpu or tc.batch) == 0
    assert (cfg.mbstd_group_size or 1) <= (tc.batch_gpu or tc.batch)
    assert tc.loss.r1_gamma > 0 and tc.ema_kimg > 0
    assert c.data.source in ('demo', 'folder', 'tfds')
    # the schema is default_config()'s: a config file adds no keys the loop would ignore
    default = loop.default_config()
    for section in ('model', 'data', 'train', 'ada', 'log', 'transfer'):
        assert set(c[section].keys()) <= set(default[section].keys()), section


@pytest.mark.parametrize('name', sorted(REFERENCE_SPECS))
def test_paper_configs_equal_reference_specs(name):
    spec = REFERENCE_SPECS[name]
    c, cfg, tc = resolved(name)
    assert cfg.img_resolution == spec['res']
    assert (cfg.z_dim, cfg.w_dim, cfg.c_dim) == (512, 512, 0)
    assert cfg.mapping_layers == spec['map']
    assert cfg.channel_base == int(spec['fmaps'] * 32768)
    assert cfg.channel_max == 512
    assert cfg.num_fp16_res == 4 and cfg.conv_clamp == 256
    assert cfg.mbstd_group_size == spec['mbstd']
    assert float(c.train.total_kimg) == spec['kimg']
    assert tc.batch == spec['mb']
    assert tc.batch_gpu == spec['mb'] // spec['ref_gpus']
    assert tc.g_lr == tc.d_lr == spec['lrate']
    assert tc.betas == (0.0, 0.99) and tc.eps == 1e-8
    assert tc.loss.r1_gamma == spec['gamma']
    assert tc.ema_kimg == spec['ema']
    assert tc.ema_rampup == spec['ramp']
    assert (tc.g_reg_interval, tc.d_reg_interval) == (4, 16)
    assert (tc.ada_target, tc.ada_interval, tc.ada_kimg) == (0.6, 4, 500.0)
    assert tc.loss.augment_spec == loop.aug.AugmentSpec.preset('bgc')
    assert (tc.loss.pl_weight, tc.loss.style_mixing_prob) == (2.0, 0.9)
    assert c.data.xflip is False and tc.freeze_d == 0


def test_reference_channel_counts_at_256():
    """fmaps 0.5 halves the 512px net's channels at high resolutions: 256x256 blocks get 64 channels."""
    _, cfg256, _ = resolved('paper256')
    _, cfg512, _ = resolved('paper512')
    assert [cfg256.channels(r) for r in (4, 32, 64, 128, 256)] == [512, 512, 256, 128, 64]
    assert [cfg512.channels(r) for r in (4, 64, 128, 256, 512)] == [512, 512, 256, 128, 64]


def test_transfer_configs_share_one_network():
    """colab_tpu/colab_gpu only change device settings: same parameter shapes as transfer512, so one
    converted checkpoint transfers to all three with every tensor copied."""
    _, base, tc = resolved('transfer512')
    assert (base.img_resolution, base.z_dim, base.w_dim, base.mapping_layers, base.channel_base,
            base.channel_max) == (512, 512, 512, 8, 32768, 512)
    assert tc.freeze_d == 4 and tc.loss.r1_gamma == 10.0 and tc.ada_kimg == 100.0 and tc.ema_rampup is None
    dtype_only = {'num_fp16_res', 'mixed_dtype', 'd_num_fp16_res', 'mbstd_group_size'}  # no parameter shapes
    for name in ('colab_tpu', 'colab_gpu'):
        _, cfg, _ = resolved(name)
        diff = {f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(base, f.name)}
        assert diff <= dtype_only, (name, diff)
        assert cfg.num_fp16_res == 4 and cfg.mixed_dtype == 'bfloat16'


def test_colab_configs_map_onto_their_devices():
    """colab_tpu: batch 32 pmapped over 8 cores = 4 per core; colab_gpu: batch 8 in one chunk on one GPU;
    paper configs on 8 devices: the reference's 8 per GPU. (8 virtual CPU devices, see conftest.)"""
    devices = jax.local_devices()
    if len(devices) < 8:
        pytest.skip('needs 8 (virtual) devices: XLA_FLAGS=--xla_force_host_platform_device_count=8')
    _, cfg, tc = resolved('colab_tpu')
    t = step_lib.Trainer(cfg, tc, devices[:8])
    assert (t.per_device, t.chunk, t.n_chunks) == (4, 4, 1)
    _, cfg, tc = resolved('colab_gpu')
    t = step_lib.Trainer(cfg, tc, devices[:1])
    assert (t.per_device, t.chunk, t.n_chunks) == (8, 8, 1)
    for name in ('paper256', 'paper512'):
        _, cfg, tc = resolved(name)
        t = step_lib.Trainer(cfg, tc, devices[:8])
        assert (t.per_device, t.chunk) == (8, 8)
        t1 = step_lib.Trainer(cfg, tc, devices[:1])  # one device: 64 per device in 8 chunks of 8
        assert (t1.per_device, t1.chunk, t1.n_chunks) == (64, 8, 8)


def test_demo_is_small_enough_for_a_cpu():
    c, cfg, tc = resolved('demo')
    g, d = param_counts(cfg)
    assert g + d < 1_000_000, (g, d)   # measured: G 263,987 + D 288,993
    assert cfg.img_resolution <= 32 and tc.batch <= 16
    assert float(c.train.total_kimg) <= 10
    assert c.data.source == 'demo'     # no download
    # the 512px transfer net is ~100x larger: the demo really is the scaled-down architecture
    g512, d512 = param_counts(resolved('transfer512')[1])
    assert g512 + d512 > 50 * (g + d)


def test_required_paths_are_placeholders():
    """Configs that need a dataset / source checkpoint leave them None (ml_collections placeholders)."""
    for name in ('paper256', 'paper512', 'transfer512', 'colab_tpu', 'colab_gpu'):
        c = load(name).get_config()
        assert c.data.path is None, name
    for name in ('transfer512', 'colab_tpu', 'colab_gpu'):
        assert load(name).get_config().transfer.path is None, name
    assert load('demo').get_config().transfer.path == ''


@pytest.mark.parametrize('name', [n for n in NAMES if n != 'demo'])
def test_docstring_command_lines_name_real_keys(name):
    """Each config documents its command line: `--config configs/NAME.py` and only existing keys."""
    module = load(name)
    doc = module.__doc__ or ''
    assert f'--config configs/{name}.py' in doc
    c = module.get_config()
    for key in re.findall(r'--config\.([a-z_.0-9]+)=', doc):
        node = c
        for part in key.split('.'):
            assert part in node, f'{name}: --config.{key} in the docstring is not a config key'
            node = node[part]


def test_run_train_refuses_missing_required_path(tmp_path):
    """run_train.py stops with one line naming the config file and the key, before any training."""
    work = tmp_path / 'run'
    r = subprocess.run([sys.executable, str(REPO / 'run_train.py'), '--config', 'configs/transfer512.py',
                        '--workdir', str(work), '--config.data.path=/nonexistent'],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert lines == ['run_train.py: error: configs/transfer512.py: config.transfer.path is required; '
                     'pass --config.transfer.path=PATH']
    assert not work.exists()
