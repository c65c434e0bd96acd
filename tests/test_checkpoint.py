"""The any-checkpoint reader: files converted in memory and cached by hash, converted dirs, workdir snapshots."""
import json

import numpy as np
import pytest

from stylegan_jax import checkpoint, networks
from stylegan_jax.cli import sample as sample_cli
from stylegan_jax.convert import reader
from stylegan_jax.train import transfer


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv('STYLEGAN_JAX_CACHE', str(tmp_path / 'cache'))
    monkeypatch.setenv('STYLEGAN_JAX_NO_COMPILE_CACHE', '1')
    return tmp_path / 'cache'


def _flat(tree):
    return {k: np.asarray(v) for k, v in networks.flatten_names(tree).items()}


def test_pkl_file_is_converted_once_and_cached_by_hash(fixtures_dir, cache, tmp_path, monkeypatch):
    src = fixtures_dir / 'sg2ada' / 'network-snapshot.pkl'
    cfg, nets, info = checkpoint.load_networks(src)
    assert set(nets) == {'G_ema', 'G', 'D'} and info['source_format'] == 'stylegan2-ada-pytorch snapshot'
    entry = checkpoint.converted_cache_dir(src)
    assert (entry / 'network.json').is_file() and info['converted_cache'] == str(entry)
    # Same as converting by hand.
    expected = reader.convert_file(src)
    for which in ('G_ema', 'D'):
        a, b = _flat(nets[which]), _flat(expected.variables[which])
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)

    # The second read comes from the cache: no conversion runs.
    monkeypatch.setattr(reader, 'convert_file', lambda *a, **k: pytest.fail('converted again'))
    cfg2, nets2, info2 = checkpoint.load_networks(src, which=('G_ema',))
    assert cfg2 == cfg and set(nets2) == {'G_ema'} and info2['source'] == str(src.absolute())
    np.testing.assert_array_equal(_flat(nets2['G_ema'])['params.mapping.fc0.weight'],
                                  _flat(nets['G_ema'])['params.mapping.fc0.weight'])
    # A changed file has another key (a copy with one more byte is not the same file).
    other = tmp_path / 'copy.pkl'
    other.write_bytes(src.read_bytes() + b'\0')
    assert checkpoint.converted_cache_dir(other) != entry


def test_unwritable_cache_still_loads(fixtures_dir, tmp_path, monkeypatch):
    blocker = tmp_path / 'not_a_dir'
    blocker.write_text('x')
    monkeypatch.setenv('STYLEGAN_JAX_CACHE', str(blocker))
    cfg, nets, _ = checkpoint.load_networks(fixtures_dir / 'rosinality' / 'checkpoint.pt', which=('G_ema',))
    assert cfg.img_resolution == 32 and 'G_ema' in nets


def test_bad_files_are_checkpoint_or_conversion_errors(tmp_path, cache):
    bad = tmp_path / 'junk.pkl'
    bad.write_bytes(b'not a pickle at all')
    with pytest.raises(ValueError, match='junk.pkl'):
        checkpoint.load_networks(bad)
    with pytest.raises(checkpoint.CheckpointError, match='no such checkpoint'):
        checkpoint.load_networks(tmp_path / 'missing.pkl')


def _fake_workdir(tmp_path, fixtures_dir, steps_kimg):
    """A training workdir layout: network.json (with the training config) and checkpoints/<step>/{G_ema, meta}."""
    conv = reader.convert_file(fixtures_dir / 'sg2ada' / 'network-snapshot.pkl', w_avg_samples=100)
    work = tmp_path / 'run'
    for i, (step, kimg) in enumerate(steps_kimg):
        d = work / 'checkpoints' / str(step)
        g = conv.variables['G_ema']
        g = {'params': g['params'], 'buffers': {**g['buffers'], 'mapping': {'w_avg': g['buffers']['mapping']['w_avg'] + i}}}
        checkpoint.save_networks(d, conv.cfg, {'G_ema': g}, {})
        (d / 'network.json').unlink()
        (d / 'meta').mkdir()
        (d / 'meta' / 'metadata').write_text(json.dumps({'kimg': kimg, 'step': step}))
    checkpoint.write_network_json(work, conv.cfg, {'training': {'train': {'batch': 16}, 'data': {'path': 'x'}}})
    return work


def test_workdir_snapshot_by_step_and_kimg(tmp_path, fixtures_dir, cache):
    work = _fake_workdir(tmp_path, fixtures_dir, [(8, 0.128), (16, 0.256), (24, 0.384)])
    assert [(s, k) for s, k, _ in checkpoint.list_snapshots(work)] == [(8, 0.128), (16, 0.256), (24, 0.384)]

    def w_avg(**kw):
        cfg, g, info = checkpoint.load_network(work, **kw)
        return float(np.asarray(g['buffers']['mapping']['w_avg'])[0]), info
    base, info = w_avg(step=8)
    assert info['step'] == 8
    assert w_avg()[0] == pytest.approx(base + 2) and w_avg()[1]['step'] == 24       # default: the latest
    assert w_avg(step=16)[0] == pytest.approx(base + 1)
    assert w_avg(kimg=0.3)[1]['step'] == 16  # nearest within +-0.5 kimg
    with pytest.raises(checkpoint.CheckpointError, match=r'no snapshot at step 9; available: step 8 \(kimg 0.128\)'):
        checkpoint.load_network(work, step=9)
    with pytest.raises(checkpoint.CheckpointError, match='no snapshot at kimg 5'):
        checkpoint.load_network(work, kimg=5)
    with pytest.raises(checkpoint.CheckpointError, match='not both'):
        checkpoint.load_network(work, step=8, kimg=0.128)
    # transfer.path accepts the same, with step / kimg.
    cfg, nets = transfer.load_transfer_source(work, step=16)
    assert set(nets) == {'G_ema', 'G'} and np.asarray(nets['G']['buffers']['mapping']['w_avg'])[0] == pytest.approx(base + 1)
    cfg, nets = transfer.load_transfer_source(fixtures_dir / 'tf_stylegan2' / 'network-snapshot-tf.pkl')
    assert set(nets) == {'G_ema', 'G', 'D'}


def test_step_on_a_file_or_converted_dir_is_an_error(tmp_path, fixtures_dir, cache, capsys):
    src = fixtures_dir / 'sg2ada' / 'network-snapshot.pkl'
    assert sample_cli.main(['--checkpoint', str(src), '--step', '3', '--outdir', str(tmp_path / 'o')]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f'stylegan-sample: error: {src}: a checkpoint file holds one snapshot; --step/--kimg select '
                   'snapshots of a training workdir']
    conv = tmp_path / 'conv'
    checkpoint.save_networks(conv, *checkpoint.load_networks(src, which=('G_ema',))[:2], {})
    with pytest.raises(checkpoint.CheckpointError, match='converted checkpoint holds one snapshot'):
        checkpoint.load_networks(conv, kimg=1)
