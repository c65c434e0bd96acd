"""stylegan-convert + stylegan-sample end to end on the reference fixtures, and the converters' error paths."""
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
from PIL import Image

from stylegan_jax import checkpoint
from stylegan_jax.convert import cli as convert_cli
from stylegan_jax.convert import reader, rosinality, to_flax, unpickle
from stylegan_jax.convert.common import ConversionError
from stylegan_jax import sample

# (fixture file, expected-outputs file, key of the expected images, truncation psi)
CASES = {
    'sg2ada': ('sg2ada/network-snapshot.pkl', 'sg2ada/vectors.npz', 'img_psi05_const', 0.5),
    'rosinality': ('rosinality/checkpoint.pt', 'rosinality/vectors.npz', 'img_trunc1', 1.0),
    'tf': ('tf_stylegan2/network-snapshot-tf.pkl', 'tf_stylegan2/expected.npz', 'img_psi05_const', 0.5),
}


def reference_uint8(nchw: np.ndarray) -> np.ndarray:
    """The reference generate.py conversion: (x * 127.5 + 128).clamp(0, 255).to(uint8), NHWC."""
    return np.clip(np.transpose(nchw, (0, 2, 3, 1)) * 127.5 + 128, 0, 255).astype(np.uint8)


@pytest.fixture(scope='module', params=sorted(CASES))
def converted(request, fixtures_dir, tmp_path_factory):
    src, exp, key, psi = CASES[request.param]
    out = tmp_path_factory.mktemp(request.param) / 'ckpt'
    assert convert_cli.main([str(fixtures_dir / src), '--out', str(out), '--w-avg-samples', '2000']) == 0
    return request.param, out, np.load(fixtures_dir / exp), key, psi


def test_sample_pngs_match_reference_uint8(converted, tmp_path, capsys):
    name, ckpt, vec, key, psi = converted
    seeds = [int(s) for s in vec['seeds']]
    outdir = tmp_path / 'out'
    rc = sample.main(['--checkpoint', str(ckpt), '--seeds', ','.join(map(str, seeds)), '--trunc', str(psi),
                      '--noise-mode', 'const', '--outdir', str(outdir), '--grid'])
    assert rc == 0, capsys.readouterr().err
    expected = reference_uint8(vec[key])
    for i, seed in enumerate(seeds):
        got = np.asarray(Image.open(outdir / f'seed{seed:04d}.png'))
        diff = np.abs(got.astype(int) - expected[i].astype(int))
        assert diff.max() <= 1, (name, seed, diff.max())
    grid = np.asarray(Image.open(outdir / 'grid.png'))
    assert grid.shape[2] == 3 and grid.size >= expected.size


def test_seed_vectors_are_the_reference_randomstate(converted):
    _, _, vec, _, _ = converted
    z = sample.z_from_seeds([int(s) for s in vec['seeds']], vec['z'].shape[1])
    np.testing.assert_array_equal(z.astype(np.float32), vec['z'].astype(np.float32))


def test_converted_checkpoint_round_trip(converted):
    name, ckpt, vec, _, _ = converted
    cfg, info = checkpoint.read_network_json(ckpt)
    assert cfg.img_resolution == 32 and cfg.z_dim == vec['z'].shape[1]
    assert info['source_format']
    for which in ('G_ema', 'G', 'D'):
        _, variables, _ = checkpoint.load_network(ckpt, which)
        assert 'params' in variables
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.save_networks(ckpt, cfg, {}, {})  # never overwrites a checkpoint


def test_convert_prints_table(fixtures_dir, tmp_path, capsys):
    assert convert_cli.main([str(fixtures_dir / CASES['tf'][0]), '--out', str(tmp_path / 'o')]) == 0
    out = capsys.readouterr().out
    for word in ('G_ema', 'D', 'parameters', '32x32'):
        assert word in out


def test_sample_style_mix_grid(converted, tmp_path):
    _, ckpt, _, _, _ = converted
    assert sample.main(['--checkpoint', str(ckpt), '--style-mix', '0-2', '5-6', '--styles', '0-3',
                        '--outdir', str(tmp_path)]) == 0
    grid = np.asarray(Image.open(tmp_path / 'stylemix.png'))
    assert grid.shape == (32 * 4, 32 * 3, 3)  # (1 header row + 3 rows) x (1 header col + 2 cols)


# --------------------------------------------------------------------------- security


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_malicious_pickle_refused_without_execution(tmp_path, capsys):
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pkl'
    evil.write_bytes(pickle.dumps({'G_ema': _Evil(marker)}))
    rc = convert_cli.main([str(evil), '--out', str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert rc != 0 and not marker.exists()
    assert 'system' in err and 'Traceback' not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / 'out').exists()


def test_malicious_torch_zip_refused(tmp_path):
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pt'
    with zipfile.ZipFile(evil, 'w') as zf:
        zf.writestr('archive/data.pkl', pickle.dumps(_Evil(marker)))
        zf.writestr('archive/version', '3\n')
    with pytest.raises(unpickle.UnsafePickleError, match='system'):
        unpickle.load_torch(evil)
    assert not marker.exists()


def test_not_a_checkpoint(tmp_path, capsys):
    bad = tmp_path / 'x.pkl'
    bad.write_bytes(pickle.dumps({'hello': 1}))
    assert convert_cli.main([str(bad), '--out', str(tmp_path / 'o')]) == 1
    assert 'unrecognised checkpoint' in capsys.readouterr().err
    assert convert_cli.main([str(tmp_path / 'missing.pkl'), '--out', str(tmp_path / 'o')]) == 1
    assert 'no such file' in capsys.readouterr().err


# --------------------------------------------------------------------------- rosinality layouts (need torch to write)


def _rosinality_state(vec, prefix):
    return {k[len(prefix) + 1:]: v for k, v in vec.items() if k.startswith(prefix + '.')}


def test_rosinality_convert_weight_layout_uses_latent_avg(fixtures_dir, tmp_path, capsys):
    torch = pytest.importorskip('torch')
    vec = np.load(fixtures_dir / 'rosinality' / 'vectors.npz')
    g_ema = {k: torch.from_numpy(np.array(v)) for k, v in _rosinality_state(vec, 'g_ema').items()}
    path = tmp_path / 'converted.pt'
    torch.save({'g_ema': g_ema, 'latent_avg': torch.from_numpy(vec['mean_latent'][0])}, path)
    out = tmp_path / 'ckpt'
    assert convert_cli.main([str(path), '--out', str(out)]) == 0
    assert 'w_avg taken from latent_avg' in capsys.readouterr().out
    cfg, variables, info = checkpoint.load_network(out)
    np.testing.assert_allclose(variables['buffers']['mapping']['w_avg'], vec['mean_latent'][0], atol=0)
    ws = sample.Sampler(cfg, variables).ws_from_z(vec['z'], trunc=0.5)
    np.testing.assert_allclose(ws, vec['latent_trunc05'], atol=1e-4)


def test_rosinality_legacy_torch_format_and_computed_w_avg(fixtures_dir, tmp_path):
    torch = pytest.importorskip('torch')
    vec = np.load(fixtures_dir / 'rosinality' / 'vectors.npz')
    g_ema = {k: torch.from_numpy(np.array(v)) for k, v in _rosinality_state(vec, 'g_ema').items()}
    path = tmp_path / 'legacy.pt'
    torch.save({'g_ema': g_ema}, path, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)
    nets = reader.read_any(path)
    conv = to_flax.networks_from_torch_style(nets, w_avg_samples=4000, seed=0)
    assert any('w_avg computed from 4000' in n for n in conv.notes)
    # The mean of 4000 mapped samples is close to the 4096-sample mean_latent the fixture used.
    w_avg = np.asarray(conv.variables['G_ema']['buffers']['mapping']['w_avg'])
    spread = np.std(vec['w'], axis=0).mean()
    assert np.abs(w_avg - vec['mean_latent'][0]).mean() < 0.1 * spread


def test_missing_and_mismatched_tensors_are_named(fixtures_dir):
    nets = rosinality.load_rosinality(fixtures_dir / 'rosinality' / 'checkpoint.pt')
    key = 'synthesis.b8.conv0.weight'
    broken = dict(nets.G_ema)
    del broken[key]
    with pytest.raises(ConversionError, match=key.replace('.', r'\.')):
        to_flax.variables_from_state_dict(broken, _cfg(nets), 'G')
    bad_shape = dict(nets.G_ema)
    bad_shape[key] = bad_shape[key][:, :-1]
    with pytest.raises(ConversionError, match='shape'):
        to_flax.variables_from_state_dict(bad_shape, _cfg(nets), 'G')
    extra = dict(nets.G_ema)
    extra['synthesis.b8.conv9.weight'] = np.zeros(3, np.float32)
    with pytest.raises(ConversionError, match='conv9'):
        to_flax.variables_from_state_dict(extra, _cfg(nets), 'G')


def _cfg(nets):
    return to_flax.config_from_torch_kwargs(nets.G_kwargs, nets.D_kwargs)


def test_w_avg_recorded_in_network_json(converted):
    name, ckpt, _, _, _ = converted
    info = json.loads((ckpt / 'network.json').read_text())
    assert 'notes' in json.dumps(info)


def test_dnnlib_easydict_reads_as_plain_dict(monkeypatch):
    """StyleGAN2-ADA train.py pickles nested kwargs as dnnlib.util.EasyDict: read as data, not refused."""
    import sys
    import types
    mod = types.ModuleType('dnnlib.util')

    class EasyDict(dict):
        def __getattr__(self, name):
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None

    EasyDict.__module__, EasyDict.__qualname__ = 'dnnlib.util', 'EasyDict'
    mod.EasyDict = EasyDict
    monkeypatch.setitem(sys.modules, 'dnnlib', types.ModuleType('dnnlib'))
    monkeypatch.setitem(sys.modules, 'dnnlib.util', mod)
    blob = pickle.dumps({'mapping_kwargs': EasyDict(num_layers=8, nested=EasyDict(lr=0.01))}, protocol=4)
    monkeypatch.delitem(sys.modules, 'dnnlib.util')
    monkeypatch.delitem(sys.modules, 'dnnlib')
    out = unpickle.load_pickle(__import__('io').BytesIO(blob))
    assert out == {'mapping_kwargs': {'num_layers': 8, 'nested': {'lr': 0.01}}}
    assert isinstance(out['mapping_kwargs'], unpickle.EasyDictRecord)
    assert b'dnnlib.util' in blob and b'EasyDict' in blob  # the pickle really names the global


@pytest.mark.parametrize('name', ['sg2ada', 'rosinality', 'tf'])
def test_one_reader_reads_each_file_once(name, fixtures_dir, monkeypatch):
    """Every format module offers detect/convert; read_any unpickles the file once (TF files were read twice)."""
    src = fixtures_dir / CASES[name][0]
    calls = {'pickle': 0, 'torch': 0}
    real_pickle, real_torch = unpickle.load_pickle, unpickle.load_torch

    def count(kind, fn):
        def wrapped(*a, **k):
            calls[kind] += 1
            return fn(*a, **k)
        return wrapped
    opened = []

    def counting_open(path, *a, **k):
        opened.append(str(path))
        return open(path, *a, **k)
    monkeypatch.setattr(unpickle, 'load_pickle', count('pickle', real_pickle))
    monkeypatch.setattr(unpickle, 'load_torch', count('torch', real_torch))
    monkeypatch.setattr(unpickle, 'open', counting_open, raising=False)
    nets = reader.read_any(src)
    assert opened == [str(src)]
    if name == 'tf':
        assert calls == {'pickle': 1, 'torch': 0}
    assert [fmt.detect(None) for fmt in reader.FORMATS] == [False] * len(reader.FORMATS)
    assert nets.source_format.startswith(reader.detect_format(unpickle.load_file(src)).NAME)


def test_conversion_errors_name_the_file(fixtures_dir, tmp_path):
    bad = tmp_path / 'cut.pt'
    bad.write_bytes((fixtures_dir / 'rosinality' / 'checkpoint.pt').read_bytes()[:5000])
    with pytest.raises(ValueError, match=f'^{bad}: '):
        reader.read_any(bad)
    other = tmp_path / 'other.pkl'
    other.write_bytes(pickle.dumps({'hello': 1}))
    with pytest.raises(ConversionError, match=f'^{other}: unrecognised checkpoint'):
        reader.read_any(other)
    with pytest.raises(ConversionError, match=f'^{other}: unrecognised'):
        rosinality.load_rosinality(other)
