"""Tests for the training config files (configs/*.py): the schema in configs/default.py, loading without
jax, the reference family (stylegan2, paper256/512/1024, cifar, auto) against the reference's train.py,
the automatic (-1) values, the dataclass defaults, and how the device configs map onto devices.
No training and no compilation (network shapes come from jax.eval_shape).

REFERENCE holds what stylegan2-ada-pytorch's `train.py` (`setup_training_loop_kwargs`) returns, computed
by running it on one-image folders at each resolution (`test_reference_table_is_the_reference_s` reruns
that when the checkout is at $SG2ADA or ../sg2ada).
"""
import dataclasses
import json
import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from stylegan_jax import networks
from stylegan_jax.train import augment as aug
from stylegan_jax.train import losses, run_config, specs
from stylegan_jax.train import step as step_lib
from stylegan_jax.train.config_files import load_config

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted((REPO / 'configs').glob('*.py'))  # training configs; configs/data/ are data-prep's
NAMES = [p.stem for p in CONFIG_FILES]
SECTIONS = ('model', 'data', 'train', 'ada', 'log', 'transfer')

# train.py's results: (cfg, resolution, --gpus) -> batch, batch_gpu, mbstd group, channel_base, mapping
# layers, lr, R1 gamma, ema_kimg, ema_rampup; scratch runs (no --resume).
REFERENCE = {
    ('auto', 256, 1): dict(batch=16, batch_gpu=16, mbstd=4, channel_base=16384, map=2, lr=0.0025, gamma=0.8192,
                           ema=5.0, ramp=0.05),
    ('auto', 512, 8): dict(batch=64, batch_gpu=8, mbstd=4, channel_base=32768, map=2, lr=0.0025, gamma=0.8192,
                           ema=20.0, ramp=0.05),
    ('auto', 1024, 2): dict(batch=8, batch_gpu=4, mbstd=4, channel_base=32768, map=2, lr=0.002, gamma=26.2144,
                            ema=2.5, ramp=0.05),
    ('auto', 32, 4): dict(batch=64, batch_gpu=16, mbstd=4, channel_base=16384, map=2, lr=0.0025, gamma=0.0032,
                          ema=20.0, ramp=0.05),
    ('auto', 128, 8): dict(batch=64, batch_gpu=8, mbstd=4, channel_base=16384, map=2, lr=0.0025, gamma=0.0512,
                           ema=20.0, ramp=0.05),
    ('stylegan2', 1024, 8): dict(batch=32, batch_gpu=4, mbstd=4, channel_base=32768, map=8, lr=0.002, gamma=10,
                                 ema=10, ramp=None),
    ('paper256', 256, 8): dict(batch=64, batch_gpu=8, mbstd=8, channel_base=16384, map=8, lr=0.0025, gamma=1,
                               ema=20, ramp=None),
    ('paper512', 512, 8): dict(batch=64, batch_gpu=8, mbstd=8, channel_base=32768, map=8, lr=0.0025, gamma=0.5,
                               ema=20, ramp=None),
    ('paper1024', 1024, 8): dict(batch=32, batch_gpu=4, mbstd=4, channel_base=32768, map=8, lr=0.002, gamma=2,
                                 ema=10, ramp=None),
    ('cifar', 32, 8): dict(batch=64, batch_gpu=32, mbstd=32, channel_base=32768, map=2, lr=0.0025, gamma=0.01,
                           ema=500, ramp=0.05),
}
# Also from train.py: every cfg: z/w 512, channel_max 512, num_fp16_res 4, conv_clamp 256, --aug=ada (target
# 0.6, bgc), kimg 25000 (cifar 100000); cifar only: pl_weight 0, style_mixing_prob 0, D architecture 'orig';
# with --resume: ada_kimg 100, ema_rampup None; --batch=64 at (auto, 256, 1): batch 64, gamma 0.8192, ema 5.
AUTO_COMBOS = [k for k in REFERENCE if k[0] == 'auto']
FAMILY = {'stylegan2': 1024, 'paper256': 256, 'paper512': 512, 'paper1024': 1024, 'cifar': 32}


def filled(c):
    """A config with its required paths (placeholders) set, as a run would have them."""
    if c.data.path is None:
        c.data.path = '/data/x'
    if c.transfer.path is None:
        c.transfer.path = '/ckpt/y'
    return c


def resolved(name, arg=None, num_devices=1):
    c = filled(load_config(REPO / 'configs' / f'{name}.py', arg))
    cfg = run_config.network_config(c)
    return c, cfg, run_config.train_config(c, cfg, num_devices=num_devices)


def param_counts(cfg: networks.NetworkConfig) -> tuple[int, int]:
    """(G, D) parameter counts from the networks' shapes (eval_shape: no compute, no compilation)."""
    key = jax.random.PRNGKey(0)
    c = jnp.zeros((1, cfg.c_dim)) if cfg.c_dim else None
    g = jax.eval_shape(lambda: networks.Generator(cfg).init({'params': key, 'noise': key}, jnp.zeros((1, cfg.z_dim)), c))
    img = jnp.zeros((1, cfg.img_resolution, cfg.img_resolution, cfg.img_channels))
    d = jax.eval_shape(lambda: networks.Discriminator(cfg).init({'params': key}, img, c))
    return networks.param_count(g['params']), networks.param_count(d['params'])


def assert_matches_reference(c, cfg, tc, ref):
    assert tc.batch == ref['batch'] and tc.batch_gpu == ref['batch_gpu']
    assert cfg.mbstd_group_size == ref['mbstd']
    assert cfg.channel_base == ref['channel_base'] and cfg.channel_max == 512
    assert cfg.mapping_layers == ref['map']
    assert tc.g_lr == tc.d_lr == ref['lr']
    assert tc.loss.r1_gamma == pytest.approx(ref['gamma'], rel=1e-12)
    assert tc.ema_kimg == pytest.approx(ref['ema'], rel=1e-12)
    assert tc.ema_rampup == ref['ramp']
    assert (cfg.z_dim, cfg.w_dim, cfg.num_fp16_res, cfg.conv_clamp) == (512, 512, 4, 256)
    assert tc.betas == (0.0, 0.99) and tc.eps == 1e-8
    assert (tc.g_reg_interval, tc.d_reg_interval) == (4, 16)
    assert (tc.ada_target, tc.ada_interval, tc.ada_kimg) == (0.6, 4, 500.0)
    assert tc.loss.augment_spec == aug.AugmentSpec.preset('bgc')
    assert c.data.xflip is False and tc.freeze_d == 0
    assert tc.nonfinite == 'nan_to_num'  # the reference's nan_to_num of the gradients


# ------------------------------------------------------------------------------ files and schema

def test_expected_config_files_exist():
    assert {'default', 'auto', 'stylegan2', 'paper256', 'paper512', 'paper1024', 'cifar', 'demo', 'transfer512',
            'colab_tpu', 'colab_gpu'} <= set(NAMES)


def test_default_documents_every_key():
    """configs/default.py is the schema: every key is assigned on its own line, with a comment."""
    documented, undocumented = set(), []
    for line in (REPO / 'configs' / 'default.py').read_text().splitlines():
        m = re.match(r'^\s+c\.(?:(\w+)\.)?(\w+) = (.*)$', line)
        if m and 'ConfigDict()' not in m.group(3):
            documented.add((m.group(1) or '', m.group(2)))
            if '#' not in m.group(3):
                undocumented.append(line)
    assert not undocumented
    c = load_config(REPO / 'configs' / 'default.py')
    assert documented == {(s, k) for s in SECTIONS for k in c[s]} | {('', 'seed')}


@pytest.mark.parametrize('name', NAMES)
def test_config_resolves_within_the_schema(name):
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
    # no config file adds keys of its own (they would be ignored): the schema is configs/default.py's
    default = load_config(REPO / 'configs' / 'default.py')
    assert set(c.keys()) == set(default.keys())
    for section in SECTIONS:
        assert set(c[section].keys()) == set(default[section].keys()), section


def test_config_files_load_without_jax():
    """Loading every config file (and the loader) imports neither jax nor TensorFlow."""
    code = ('import sys, pathlib\n'
            'from stylegan_jax.train.config_files import load_config\n'
            f'for p in sorted(pathlib.Path({str(REPO / "configs")!r}).glob("*.py")):\n'
            '    load_config(p)\n'
            'load_config("auto", "512,8")\n'
            'bad = [m for m in ("jax", "tensorflow", "flax") if m in sys.modules]\n'
            'print(bad); sys.exit(1 if bad else 0)\n')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_each_config_sets_only_what_differs_from_its_base():
    """A config file's update() calls set no key to the value its base already has."""
    for path in CONFIG_FILES:
        text = path.read_text()
        m = re.search(r"base\(__file__, '(\w+)'", text)
        if not m or path.stem == 'auto' or path.stem.startswith('demo'):  # auto computes all; demo*: the demo's
            continue
        parent = load_config(REPO / 'configs' / f'{m.group(1)}.py')
        child = load_config(path)
        for section in SECTIONS:
            for call in re.findall(rf'c\.{section}\.update\((.*?)\)\n', text, re.S):
                for key in re.findall(r'(\w+)=', call):
                    assert child[section][key] != parent[section][key], f'{path.name}: {section}.{key} as in its base'


# ------------------------------------------------------------------------------ the reference family

@pytest.mark.parametrize('name', sorted(FAMILY))
def test_family_configs_equal_reference(name):
    res = FAMILY[name]
    c, cfg, tc = resolved(name)
    assert cfg.img_resolution == res
    assert_matches_reference(c, cfg, tc, REFERENCE[(name, res, 8)])
    assert float(c.train.total_kimg) == (100_000 if name == 'cifar' else 25_000)
    if name == 'cifar':
        assert (tc.loss.pl_weight, tc.loss.style_mixing_prob, cfg.d_architecture) == (0.0, 0.0, 'orig')
    else:
        assert (tc.loss.pl_weight, tc.loss.style_mixing_prob, cfg.d_architecture) == (2.0, 0.9, 'resnet')
    assert float(c.log.fid_kimg) == float(c.log.checkpoint_kimg) == 200 and c.log.fid_num_fake == 50_000


@pytest.mark.parametrize('combo', AUTO_COMBOS, ids=lambda k: f'{k[1]}px-{k[2]}gpu')
def test_auto_config_equals_reference(combo):
    _, res, gpus = combo
    c, cfg, tc = resolved('auto', f'{res},{gpus}', num_devices=gpus)
    assert cfg.img_resolution == res == c.data.resolution
    assert_matches_reference(c, cfg, tc, REFERENCE[combo])
    s = specs.auto_spec(res, gpus)
    assert (s.mb, s.mbstd, s.channel_base, s.lrate, s.map, s.ramp) == tuple(
        REFERENCE[combo][k] for k in ('batch', 'mbstd', 'channel_base', 'lr', 'map', 'ramp'))


@pytest.mark.parametrize('combo', AUTO_COMBOS, ids=lambda k: f'{k[1]}px-{k[2]}gpu')
def test_automatic_gamma_and_ema_use_the_spec_batch(combo):
    """-1 resolves to --cfg=auto's gamma and ema for the resolution and device count, whatever train.batch is
    (train.py --batch changes the batch but keeps them)."""
    _, res, gpus = combo
    c = filled(load_config(REPO / 'configs' / 'default.py'))
    c.model.img_resolution = c.data.resolution = res
    c.train.batch = 4 * gpus  # not the spec batch
    assert (c.train.r1_gamma, c.train.ema_kimg) == (-1, -1)
    tc = run_config.train_config(c, run_config.network_config(c), num_devices=gpus)
    assert tc.loss.r1_gamma == pytest.approx(REFERENCE[combo]['gamma'], rel=1e-12)
    assert tc.ema_kimg == pytest.approx(REFERENCE[combo]['ema'], rel=1e-12)
    # configs/auto.py keeps its computed values when the batch is overridden, as train.py --batch=64
    a = load_config(REPO / 'configs' / 'auto.py', '256,1')
    a.train.batch = 64
    ta = run_config.train_config(filled(a), run_config.network_config(a), num_devices=1)
    assert (ta.batch, ta.loss.r1_gamma, ta.ema_kimg) == (64, pytest.approx(0.8192), 5.0)


@pytest.mark.parametrize('name', ['auto', 'cifar', 'default', 'paper256'])
def test_transfer_uses_the_reference_resume_settings_unless_set(name):
    """train.py --resume: ada_kimg 100 and no EMA ramp-up (the spec's 0.05 from scratch for auto/cifar)."""
    c = filled(load_config(REPO / 'configs' / f'{name}.py'))
    cfg = run_config.network_config(c)
    scratch = run_config.train_config(c, cfg, num_devices=8)
    assert scratch.ada_kimg == 500.0
    assert scratch.ema_rampup == (0.05 if name in ('auto', 'cifar', 'default') else None)
    c.transfer.path = '/ckpt/source'
    resumed = run_config.train_config(c, cfg, num_devices=8)
    assert (resumed.ada_kimg, resumed.ema_rampup) == (100.0, None)
    auto = run_config.auto_values(c, cfg.img_resolution, 8)
    # the family's ramp is None in its spec (0 here, set), auto/cifar/default leave the choice to the rule (-1)
    ramp_auto = name in ('auto', 'cifar', 'default')
    assert set(auto.automatic) >= {'ada.kimg'} | ({'train.ema_rampup'} if ramp_auto else set())
    assert ('train.ema_rampup' in auto.automatic) == ramp_auto
    # set explicitly, they stay
    c.ada.kimg, c.train.ema_rampup = 250.0, 0.1
    kept = run_config.train_config(c, cfg, num_devices=8)
    assert (kept.ada_kimg, kept.ema_rampup) == (250.0, 0.1)


def test_auto_config_argument_errors():
    with pytest.raises(ValueError, match=r'RESOLUTION\[,DEVICES\]'):
        load_config(REPO / 'configs' / 'auto.py', '512x8')
    with pytest.raises(ValueError, match='power of two'):
        load_config(REPO / 'configs' / 'auto.py', '500')


def test_reference_table_is_the_reference_s(tmp_path):
    """Rerun the reference's train.py setup on one-image folders and compare with REFERENCE."""
    sg2ada = pathlib.Path(os.environ.get('SG2ADA', REPO.parent / 'sg2ada'))
    if not (sg2ada / 'train.py').is_file():
        pytest.skip(f'no stylegan2-ada-pytorch checkout at {sg2ada} (set SG2ADA)')
    pytest.importorskip('torch')
    code = f'''
import json, sys, numpy as np
from PIL import Image
sys.path.insert(0, {str(sg2ada)!r})
import train
out = {{}}
for cfg, res, gpus in {[list(k) for k in REFERENCE]!r}:
    d = {str(tmp_path)!r} + f'/d{{res}}'
    import os; os.makedirs(d, exist_ok=True)
    Image.fromarray(np.zeros((res, res, 3), np.uint8)).save(d + '/a.png')
    rows = {{}}
    for resume in (None, 'x.pkl'):
        _, a = train.setup_training_loop_kwargs(data=d, gpus=gpus, cfg=cfg, resume=resume)
        rows[bool(resume)] = dict(batch=a.batch_size, batch_gpu=a.batch_gpu, mbstd=a.D_kwargs.epilogue_kwargs.mbstd_group_size,
            channel_base=a.G_kwargs.synthesis_kwargs.channel_base, map=a.G_kwargs.mapping_kwargs.num_layers,
            lr=a.G_opt_kwargs.lr, gamma=a.loss_kwargs.r1_gamma, ema=a.ema_kimg, ramp=a.ema_rampup,
            ada_kimg=a.get('ada_kimg', 500))
    out[f'{{cfg}}/{{res}}/{{gpus}}'] = rows
print(json.dumps(out))
'''
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    for (cfg, res, gpus), ref in REFERENCE.items():
        rows = got[f'{cfg}/{res}/{gpus}']
        scratch = rows['false']
        assert {k: scratch[k] for k in ref} == pytest.approx(ref), (cfg, res, gpus)
        assert (rows['true']['ada_kimg'], rows['true']['ramp']) == (100, None)


# ------------------------------------------------------------------------------ one source of defaults

def test_dataclass_defaults_equal_default_config():
    """NetworkConfig(), TrainConfig() and LossConfig() are configs/default.py resolved on one device."""
    c, cfg, tc = resolved('default', num_devices=1)
    assert cfg == networks.NetworkConfig()
    assert tc == step_lib.TrainConfig()
    assert tc.loss == losses.LossConfig()
    # resolved -1 values: cfg 'auto' at 256 on one GPU
    assert (tc.loss.r1_gamma, tc.ema_kimg, tc.ema_rampup, tc.ada_kimg) == (0.8192, 5.0, 0.05, 500.0)


def test_default_config_is_auto_at_256_on_one_device_in_float32():
    d, dcfg, dtc = resolved('default')
    a, acfg, atc = resolved('auto', '256,1')
    same_network = {f.name for f in dataclasses.fields(dcfg)} - {'num_fp16_res'}
    assert {k: getattr(dcfg, k) for k in same_network} == {k: getattr(acfg, k) for k in same_network}
    assert (dcfg.num_fp16_res, acfg.num_fp16_res) == (0, 4)
    assert dataclasses.replace(dtc, batch_gpu=16, nonfinite='nan_to_num') == atc


# ------------------------------------------------------------------------------ device configs

def test_transfer_configs_share_one_network():
    """colab_tpu/colab_gpu only change device settings: same parameter shapes as transfer512, so one
    converted checkpoint transfers to all three with every tensor copied."""
    _, base, tc = resolved('transfer512')
    assert (base.img_resolution, base.z_dim, base.w_dim, base.mapping_layers, base.channel_base,
            base.channel_max) == (512, 512, 512, 8, 32768, 512)
    assert tc.freeze_d == 4 and tc.loss.r1_gamma == 10.0 and tc.ada_kimg == 100.0 and tc.ema_rampup is None
    precision_only = {'num_fp16_res', 'mixed_dtype', 'd_num_fp16_res', 'fp32_precision'}  # no parameter shapes
    for name in ('colab_tpu', 'colab_gpu'):
        _, cfg, _ = resolved(name)
        diff = {f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(base, f.name)}
        assert diff <= precision_only, (name, diff)
        assert cfg.num_fp16_res == 4
    # precision per accelerator: float16 on T4/V100 (with the reference's nan_to_num), bfloat16 on TPU
    _, gpu, gtc = resolved('colab_gpu')
    _, tpu, ttc = resolved('colab_tpu')
    assert (gpu.mixed_dtype, gpu.fp32_precision, gtc.nonfinite) == ('float16', 'highest', 'nan_to_num')
    assert (tpu.mixed_dtype, tpu.fp32_precision, ttc.nonfinite) == ('bfloat16', 'default', 'skip')
    assert gtc.batch == tc.batch and gtc.ema_kimg == tc.ema_kimg  # the same training as transfer512


def test_device_configs_map_onto_their_devices():
    """colab_tpu: batch 32 pmapped over 8 cores = 4 per core; colab_gpu: batch 16 in 2 rounds of 8 on one GPU;
    paper configs on 8 devices: the reference's 8 per GPU. (8 virtual CPU devices, see conftest.)"""
    devices = jax.local_devices()
    if len(devices) < 8:
        pytest.skip('needs 8 (virtual) devices: XLA_FLAGS=--xla_force_host_platform_device_count=8')
    _, cfg, tc = resolved('colab_tpu')
    t = step_lib.Trainer(cfg, tc, devices[:8])
    assert (t.per_device, t.chunk, t.n_chunks) == (4, 4, 1)
    _, cfg, tc = resolved('colab_gpu')
    t = step_lib.Trainer(cfg, tc, devices[:1])
    assert (t.per_device, t.chunk, t.n_chunks) == (16, 8, 2)
    for name in ('paper256', 'paper512'):
        _, cfg, tc = resolved(name)
        t = step_lib.Trainer(cfg, tc, devices[:8])
        assert (t.per_device, t.chunk) == (8, 8)
        t1 = step_lib.Trainer(cfg, tc, devices[:1])  # one device: 64 per device in 8 rounds of 8
        assert (t1.per_device, t1.chunk, t1.n_chunks) == (64, 8, 8)


def test_reference_channel_counts():
    """fmaps 0.5 halves the 512px net's channels at high resolutions: 256x256 blocks get 64 channels."""
    _, cfg256, _ = resolved('paper256')
    _, cfg512, _ = resolved('paper512')
    assert [cfg256.channels(r) for r in (4, 32, 64, 128, 256)] == [512, 512, 256, 128, 64]
    assert [cfg512.channels(r) for r in (4, 64, 128, 256, 512)] == [512, 512, 256, 128, 64]


def test_demo_is_small_enough_for_a_cpu():
    c, cfg, tc = resolved('demo')
    g, d = param_counts(cfg)
    assert g + d < 1_000_000, (g, d)
    assert cfg.img_resolution <= 32 and tc.batch <= 16
    assert float(c.train.total_kimg) <= 20
    assert c.data.source == 'demo'     # no download
    g512, d512 = param_counts(resolved('transfer512')[1])
    assert g512 + d512 > 50 * (g + d)  # the 512px transfer net is the full-size architecture


def test_required_paths_are_placeholders():
    """Configs that need a dataset / source checkpoint leave them None (ml_collections placeholders)."""
    for name in ('stylegan2', 'paper256', 'paper512', 'paper1024', 'cifar', 'auto', 'transfer512', 'colab_tpu',
                 'colab_gpu'):
        assert load_config(REPO / 'configs' / f'{name}.py').data.path is None, name
    for name in ('transfer512', 'colab_tpu', 'colab_gpu'):
        assert load_config(REPO / 'configs' / f'{name}.py').transfer.path is None, name
    assert load_config(REPO / 'configs' / 'default.py').transfer.path == ''


@pytest.mark.parametrize('name', [n for n in NAMES if not n.startswith('demo')])
def test_docstring_command_lines_name_real_keys(name):
    """Each config documents its command line: `--config configs/NAME.py` and only existing keys."""
    path = REPO / 'configs' / f'{name}.py'
    doc = path.read_text().split('"""')[1]
    assert f'--config configs/{name}.py' in doc
    c = load_config(path)
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
