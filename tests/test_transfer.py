"""Tests for stylegan_jax.train.transfer: what is copied, reshaped, new or dropped, and the table.

Variable trees come from ``jax.eval_shape`` of the real networks (their exact names and shapes,
no compilation) filled with distinct random numbers, so every copied value can be traced back to
its source tensor.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stylegan_jax.networks import Discriminator, Generator, NetworkConfig
from stylegan_jax.train.transfer import (
    TransferRow,
    format_table,
    load_transfer_source,
    transfer_variables,
)

SMALL = NetworkConfig(z_dim=16, w_dim=16, img_resolution=32, mapping_layers=2, channel_base=256,
                      channel_max=32)


def _fill(tree, rng):
    return jax.tree_util.tree_map(lambda s: rng.standard_normal(s.shape).astype(s.dtype), dict(tree))


def _nets(cfg: NetworkConfig, seed: int) -> dict:
    key = jax.random.PRNGKey(0)
    z = jnp.zeros((1, cfg.z_dim))
    c = jnp.zeros((1, cfg.c_dim)) if cfg.c_dim else None
    g = jax.eval_shape(lambda: Generator(cfg).init({'params': key, 'noise': key}, z, c))
    img = jnp.zeros((1, cfg.img_resolution, cfg.img_resolution, cfg.img_channels))
    d = jax.eval_shape(lambda: Discriminator(cfg).init({'params': key}, img, c))
    rng = np.random.default_rng(seed)
    return {'G': _fill(g, rng), 'G_ema': _fill(g, rng), 'D': _fill(d, rng)}


def _flat(tree, prefix=''):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict) or hasattr(v, 'items'):
            out.update(_flat(v, f'{prefix}{k}/'))
        else:
            out[f'{prefix}{k}'] = np.asarray(v)
    return out


def _by_action(rows):
    out = {a: set() for a in ('copied', 'reshaped', 'new', 'dropped')}
    for r in rows:
        out[r.action].add(r.name)
    return out


def test_same_config_copies_everything_exactly():
    src, dst = _nets(SMALL, 0), _nets(SMALL, 1)
    out, rows = transfer_variables(src, SMALL, dst, SMALL)
    acts = _by_action(rows)
    n_tensors = sum(len(_flat(src[k])) for k in src)
    assert len(acts['copied']) == n_tensors and not (acts['reshaped'] | acts['new'] | acts['dropped'])
    for net in ('G', 'G_ema', 'D'):
        fs, fo = _flat(src[net]), _flat(out[net])
        assert fs.keys() == fo.keys()
        for k in fs:
            assert fo[k].dtype == fs[k].dtype and np.array_equal(fo[k], fs[k]), k
    # dst was not modified in place
    assert not np.array_equal(_flat(dst['G'])['params/mapping/fc0/weight'],
                              _flat(src['G'])['params/mapping/fc0/weight'])
    table = format_table(rows)
    assert table.splitlines()[0].startswith('transfer: G: ')
    assert '0 new' in table and '0 dropped' in table and len(table.splitlines()) == 1


def test_resolution_and_mapping_depth_mismatch():
    big = dataclasses.replace(SMALL, img_resolution=64, mapping_layers=4)
    src, dst = _nets(SMALL, 0), _nets(big, 1)
    out, rows = transfer_variables(src, SMALL, dst, big)
    acts = _by_action(rows)
    names = {net: set(_flat(dst[net])) for net in dst}
    src_names = {net: set(_flat(src[net])) for net in src}
    # Expected sets from the name sets alone, and spot checks of the policy.
    for net in ('G', 'G_ema', 'D'):
        new = {f'{net}/{n}' for n in names[net] - src_names[net]}
        dropped = {f'{net}/{n}' for n in src_names[net] - names[net]}
        assert {r for r in acts['new'] if r.startswith(net + '/')} == new
        assert {r for r in acts['dropped'] if r.startswith(net + '/')} == dropped
    for net in ('G', 'G_ema'):
        new_g = {r for r in acts['new'] if r.startswith(net + '/')}
        assert all('/synthesis/b64/' in r or '/mapping/fc2/' in r or '/mapping/fc3/' in r for r in new_g)
        assert f'{net}/params/mapping/fc3/weight' in new_g and f'{net}/params/synthesis/b64/torgb/weight' in new_g
        assert f'{net}/params/mapping/fc1/weight' in acts['copied']
        assert f'{net}/params/synthesis/b32/torgb/weight' in acts['copied']
    assert acts['dropped'] == {'D/params/b32/fromrgb/weight', 'D/params/b32/fromrgb/bias'}
    assert 'D/params/b64/fromrgb/weight' in acts['new'] and 'D/params/b32/conv0/weight' in acts['copied']
    assert not acts['reshaped']
    # Values: copied rows hold the source, new rows the destination's init.
    fo, fs, fd = _flat(out['G']), _flat(src['G']), _flat(dst['G'])
    np.testing.assert_array_equal(fo['params/mapping/fc1/weight'], fs['params/mapping/fc1/weight'])
    np.testing.assert_array_equal(fo['params/mapping/fc2/weight'], fd['params/mapping/fc2/weight'])
    np.testing.assert_array_equal(fo['params/synthesis/b64/conv0/weight'],
                                  fd['params/synthesis/b64/conv0/weight'])
    np.testing.assert_array_equal(_flat(out['G_ema'])['params/synthesis/b8/conv1/weight'],
                                  _flat(src['G_ema'])['params/synthesis/b8/conv1/weight'])
    # Output trees have exactly the destination structure and shapes.
    for net in dst:
        assert {k: v.shape for k, v in _flat(out[net]).items()} == {k: v.shape for k, v in _flat(dst[net]).items()}
    # The table names every non-copied tensor and counts per action.
    table = format_table(rows)
    head = table.splitlines()[0]
    n_new_g = len([r for r in acts['new'] if r.startswith('G/')])
    assert f'G: {len(names["G"]) - n_new_g} copied, 0 reshaped, {n_new_g} new, 0 dropped' in head
    assert 'D: ' in head and '2 dropped' in head
    assert 'params/mapping/fc3/weight' in table and 'G,G_ema' in table
    assert any(line.split() == ['dropped', 'D', 'params/b32/fromrgb/weight', '(8,', '3,', '1,', '1)', '-']
               for line in table.splitlines()[1:])
    assert 'synthesis/b8/conv1/weight' not in table  # plain copies are only counted


def test_downscale_drops_top_blocks_and_shallower_mapping_drops_layers():
    big = dataclasses.replace(SMALL, img_resolution=64, mapping_layers=4)
    out, rows = transfer_variables(_nets(big, 0), big, _nets(SMALL, 1), SMALL)
    acts = _by_action(rows)
    assert 'G/params/synthesis/b64/conv0/weight' in acts['dropped']
    assert 'G_ema/params/mapping/fc3/weight' in acts['dropped']
    assert acts['new'] == {'D/params/b32/fromrgb/weight', 'D/params/b32/fromrgb/bias'}
    assert 'D/params/b64/skip/weight' in acts['dropped']


def test_channel_change_is_reshaped_by_crop_and_pad():
    wide = dataclasses.replace(SMALL, channel_base=512, channel_max=64, c_dim=0, w_dim=24)
    src, dst = _nets(SMALL, 0), _nets(wide, 1)
    out, rows = transfer_variables(src, SMALL, dst, wide)
    by_name = {r.name: r for r in rows}
    r = by_name['G/params/synthesis/b8/conv0/weight']
    assert r.action == 'reshaped' and r.src_shape == (32, 32, 3, 3) and r.dst_shape == (64, 64, 3, 3)
    got = _flat(out['G'])['params/synthesis/b8/conv0/weight']
    s = _flat(src['G'])['params/synthesis/b8/conv0/weight']
    d = _flat(dst['G'])['params/synthesis/b8/conv0/weight']
    np.testing.assert_array_equal(got[:32, :32], s)
    np.testing.assert_array_equal(got[32:], d[32:])
    np.testing.assert_array_equal(got[:32, 32:], d[:32, 32:])
    # Mapping width 16 -> 24: w_avg is padded with the destination's init.
    r = by_name['G_ema/buffers/mapping/w_avg']
    assert r.action == 'reshaped' and (r.src_shape, r.dst_shape) == ((16,), (24,))
    w = _flat(out['G_ema'])['buffers/mapping/w_avg']
    np.testing.assert_array_equal(w[:16], _flat(src['G_ema'])['buffers/mapping/w_avg'])
    np.testing.assert_array_equal(w[16:], _flat(dst['G_ema'])['buffers/mapping/w_avg'][16:])
    # Shrinking crops.
    back, rows2 = transfer_variables(out, wide, src, SMALL)
    np.testing.assert_array_equal(_flat(back['G'])['params/synthesis/b8/conv0/weight'], s)
    assert 'reshaped' in format_table(rows2)


def test_missing_networks_fall_back_or_stay_new_and_channels_checked():
    src, dst = _nets(SMALL, 0), _nets(SMALL, 1)
    out, rows = transfer_variables({'G_ema': src['G_ema']}, SMALL, dst, SMALL)
    acts = _by_action(rows)
    np.testing.assert_array_equal(_flat(out['G'])['params/mapping/fc0/weight'],
                                  _flat(src['G_ema'])['params/mapping/fc0/weight'])
    assert {r.split('/', 1)[0] for r in acts['new']} == {'D'}
    assert len(acts['new']) == len(_flat(dst['D']))
    with pytest.raises(ValueError, match='image channels'):
        transfer_variables(src, SMALL, dst, dataclasses.replace(SMALL, img_channels=1))


def test_format_table_groups_and_orders():
    rows = [TransferRow('G/params/a', 'new', None, (2,)), TransferRow('G_ema/params/a', 'new', None, (2,)),
            TransferRow('D/params/b', 'dropped', (3, 1), None), TransferRow('D/params/c', 'copied', (1,), (1,))]
    lines = format_table(rows).splitlines()
    assert lines[0] == ('transfer: G: 0 copied, 0 reshaped, 1 new, 0 dropped | '
                        'G_ema: 0 copied, 0 reshaped, 1 new, 0 dropped | '
                        'D: 1 copied, 0 reshaped, 0 new, 1 dropped')
    assert lines[1].split() == ['action', 'network', 'tensor', 'source', 'shape', 'new', 'shape']
    assert lines[2].split() == ['new', 'G,G_ema', 'params/a', '-', '(2,)']
    assert lines[3].split() == ['dropped', 'D', 'params/b', '(3,', '1)', '-']
    assert format_table([]) == 'transfer: nothing to transfer'


def test_load_transfer_source_roundtrip(tmp_path):
    from stylegan_jax.checkpoint import CheckpointError, save_networks
    nets = _nets(SMALL, 0)
    save_networks(tmp_path / 'ckpt', SMALL, {'G_ema': nets['G_ema'], 'D': nets['D']}, {'source': 'test'})
    cfg, loaded = load_transfer_source(tmp_path / 'ckpt')
    assert cfg == SMALL and set(loaded) == {'G', 'G_ema', 'D'}
    for k in ('params/mapping/fc0/weight', 'buffers/mapping/w_avg'):
        np.testing.assert_array_equal(_flat(loaded['G'])[k], _flat(nets['G_ema'])[k])
    np.testing.assert_array_equal(_flat(loaded['D'])['params/b4/out/weight'],
                                  _flat(nets['D'])['params/b4/out/weight'])
    with pytest.raises(CheckpointError, match='nope'):
        load_transfer_source(tmp_path / 'nope')
