"""Sampling helpers: seed parsing, uint8 conversion, grids, style mixing and CLI errors."""
import numpy as np
import pytest

from stylegan_jax import sample


def test_parse_seeds():
    assert sample.parse_seeds('0-3,7,10-11') == [0, 1, 2, 3, 7, 10, 11]
    assert sample.parse_seeds(' 5 ') == [5]
    for bad in ('', 'a', '3-1', '1-2-3'):
        with pytest.raises(ValueError):
            sample.parse_seeds(bad)


def test_to_uint8_is_the_reference_rounding():
    x = np.array([-1.5, -1.0, -0.0039, 0.0, 0.5, 0.99, 1.0, 2.0], np.float32)
    # torch: (x * 127.5 + 128).clamp(0, 255).to(torch.uint8) truncates toward zero.
    expected = np.array([0, 0, 127, 128, 191, 254, 255, 255], np.uint8)
    np.testing.assert_array_equal(sample.to_uint8(x), expected)


def test_image_grid_places_images_row_major():
    imgs = np.stack([np.full((2, 3, 3), i, np.uint8) for i in range(5)])
    grid = sample.image_grid(imgs, cols=3)
    assert grid.shape == (4, 9, 3)
    assert grid[0, 3, 0] == 1 and grid[2, 0, 0] == 3 and grid[2, 3, 0] == 4
    assert grid[2, 6, 0] == 255  # unused cell stays white


def test_z_from_seeds_matches_numpy_randomstate():
    z = sample.z_from_seeds([0, 12], 7)
    np.testing.assert_array_equal(z[1], np.random.RandomState(12).randn(7).astype(np.float32))


def test_style_mix_takes_layers_from_column_seed(fixtures_dir):
    from stylegan_jax.convert import sg2ada, to_flax
    conv = to_flax.networks_from_torch_style(sg2ada.load_sg2ada(fixtures_dir / 'sg2ada' / 'network-snapshot.pkl'))
    s = sample.Sampler(conv.cfg, conv.variables['G_ema'])
    all_styles = list(range(conv.cfg.num_ws))
    grid = sample.style_mix_grid(s, [1], [2], all_styles)
    # Taking every layer from the column seed reproduces the column image (+-1: another batch shape).
    assert np.abs(grid[32:, 32:].astype(int) - grid[:32, 32:]).max() <= 1
    assert np.abs(grid[32:, 32:].astype(int) - grid[32:, :32]).max() > 10  # and not the row image
    with pytest.raises(ValueError, match='out of range'):
        sample.style_mix_grid(s, [1], [2], [99])


def test_cli_bad_checkpoint_is_one_line(tmp_path, capsys):
    assert sample.main(['--checkpoint', str(tmp_path), '--outdir', str(tmp_path / 'o')]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'network.json' in err[0]


def test_trunc_center_and_projected_w(fixtures_dir, tmp_path, monkeypatch, capsys):
    from PIL import Image

    from stylegan_jax import latents
    from stylegan_jax.cli import sample as cli
    monkeypatch.setenv('STYLEGAN_JAX_CACHE', str(tmp_path / 'cache'))
    monkeypatch.setenv('STYLEGAN_JAX_NO_COMPILE_CACHE', '1')
    ckpt = str(fixtures_dir / 'sg2ada' / 'network-snapshot.pkl')
    s = sample.Sampler.from_checkpoint(ckpt)
    center = s.ws_from_z(sample.z_from_seeds([9], s.z_dim))
    latents.save(tmp_path / 'c.npz', center)
    # psi 0 toward a projected latent renders that latent for every seed.
    assert cli.main(['--checkpoint', ckpt, '--seeds', '1,2', '--trunc', '0', '--trunc-center', str(tmp_path / 'c.npz'),
                     '--outdir', str(tmp_path / 'a')]) == 0
    assert cli.main(['--checkpoint', ckpt, '--projected-w', str(tmp_path / 'c.npz'), '--outdir', str(tmp_path / 'b')]) == 0
    ref = np.asarray(Image.open(tmp_path / 'b' / 'proj00.png')).astype(int)
    for name in ('seed0001.png', 'seed0002.png'):
        assert np.abs(np.asarray(Image.open(tmp_path / 'a' / name)).astype(int) - ref).max() <= 1
    (tmp_path / 'bad.npz').write_bytes(b'junk')
    assert cli.main(['--checkpoint', ckpt, '--projected-w', str(tmp_path / 'bad.npz'), '--outdir', str(tmp_path / 'c')]) == 1
    latents.save(tmp_path / 'wrong.npz', np.zeros((1, 5, 64)))
    assert cli.main(['--checkpoint', ckpt, '--projected-w', str(tmp_path / 'wrong.npz'), '--outdir', str(tmp_path / 'c')]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2].startswith(f'stylegan-sample: error: {tmp_path / "bad.npz"}: cannot read latents')
    assert err[-1] == (f'stylegan-sample: error: {tmp_path / "wrong.npz"}: w has shape [1, 5, 64], this network '
                       'takes [N, 8, 64]')


def test_library_names_and_cli_module():
    from stylegan_jax.cli import sample as cli
    for name in ('parse_seeds', 'z_from_seeds', 'to_uint8', 'image_grid', 'Sampler', 'style_mix_grid', 'save_png'):
        assert hasattr(sample, name)
    assert sample.main is cli.main  # old callers of sample.main keep working
    from stylegan_jax.metrics import inception
    assert not hasattr(inception, 'float_to_uint8')  # one quantisation function: sample.to_uint8
