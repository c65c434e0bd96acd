"""stylegan-export to rosinality .pt: written without torch, read by torch.load(weights_only=True), round trips."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from stylegan_jax.cli import export as export_cli
from stylegan_jax.cli import sample as sample_cli
from stylegan_jax.convert import torch_writer, unpickle
from _creator_fixtures import isolated_cache  # noqa: F401 (a pytest fixture)



def test_torch_writer_objects_round_trip(tmp_path):
    torch = pytest.importorskip('torch')
    import collections
    obj = {'sd': collections.OrderedDict([('w', np.arange(12, dtype=np.float32).reshape(3, 4).T),  # non-contiguous
                                          ('i', np.array([1, -2], np.int64)), ('s', np.array(2.5, np.float32))]),
           'n': 7, 'f': 0.25, 'big': 2 ** 40, 'l': [1, None, True, 'x'], 't': (1, 2)}
    path = torch_writer.save_torch(obj, tmp_path / 'o.pt')
    got = torch.load(path, weights_only=True)
    assert isinstance(got['sd'], collections.OrderedDict) and list(got['sd']) == ['w', 'i', 's']
    np.testing.assert_array_equal(got['sd']['w'].numpy(), obj['sd']['w'])
    assert got['sd']['i'].dtype == torch.int64 and got['sd']['s'].shape == () and float(got['sd']['s']) == 2.5
    assert {k: got[k] for k in ('n', 'f', 'big', 'l', 't')} == {k: obj[k] for k in ('n', 'f', 'big', 'l', 't')}
    ours = unpickle.load_torch(path)  # and our own reader
    np.testing.assert_array_equal(ours['sd']['w'], obj['sd']['w'])


def test_export_sg2ada_gives_the_same_images(fixtures_dir, tmp_path, capsys):
    torch = pytest.importorskip('torch')
    src = fixtures_dir / 'sg2ada' / 'network-snapshot.pkl'
    out = tmp_path / 'm.pt'
    assert export_cli.main([str(src), '--format', 'rosinality', '--out', str(out)]) == 0
    assert 'conv_clamp=256 dropped' in capsys.readouterr().out
    d = torch.load(out, map_location='cpu', weights_only=True)
    assert {'g_ema', 'latent_avg', 'g', 'd'} <= set(d)
    assert any(k.startswith('style.') for k in d['g_ema']) and any(k.startswith('convs.') for k in d['g_ema'])
    assert tuple(d['latent_avg'].shape) == (64,)
    assert sample_cli.main(['--checkpoint', str(out), '--seeds', '0-3', '--trunc', '0.5', '--outdir',
                            str(tmp_path / 'o')]) == 0
    vec = np.load(fixtures_dir / 'sg2ada' / 'vectors.npz')
    for i, seed in enumerate(vec['seeds']):
        ref = np.clip(vec['img_psi05_const'][i].transpose(1, 2, 0) * 127.5 + 128, 0, 255).astype(np.uint8)
        got = np.asarray(Image.open(tmp_path / 'o' / f'seed{int(seed):04d}.png'))
        assert np.abs(got.astype(int) - ref).max() <= 1
    # Exists: refused, never overwritten.
    assert export_cli.main([str(src), '--out', str(out)]) == 1
    assert 'exists' in capsys.readouterr().err


def test_rosinality_round_trip_is_exact(fixtures_dir, tmp_path):
    """rosinality -> ours -> rosinality gives back every tensor of the original state dicts, buffers included."""
    src = fixtures_dir / 'rosinality' / 'checkpoint.pt'
    out = tmp_path / 'back.pt'
    assert export_cli.main([str(src), '--out', str(out)]) == 0
    orig, back = unpickle.load_torch(src), unpickle.load_torch(out)
    for net in ('g_ema', 'g', 'd'):
        assert list(back[net]) == [k for k in back[net]] and set(back[net]) == set(orig[net]), net
        for k, v in orig[net].items():
            np.testing.assert_array_equal(back[net][k], np.asarray(v), err_msg=f'{net}.{k}')


def test_export_does_not_import_torch(fixtures_dir, tmp_path):
    code = ('import sys; from stylegan_jax.convert.export import export; '
            f'export({str(fixtures_dir / "rosinality" / "checkpoint.pt")!r}, {str(tmp_path / "m.pt")!r}); '
            'assert "torch" not in sys.modules, "torch was imported"')
    subprocess.run([sys.executable, '-c', code], check=True, timeout=300,
                   env={**__import__('os').environ, 'STYLEGAN_JAX_CACHE': str(tmp_path / 'c')})
