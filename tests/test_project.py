"""Projection: recover a latent the fixture net generated; the CLI's files; bad targets; the distances."""
import numpy as np
import pytest
from PIL import Image

from stylegan_jax import latents, projector
from stylegan_jax.cli import project as project_cli
from stylegan_jax.cli import sample as sample_cli
from stylegan_jax.perceptual import distance, vgg16
from stylegan_jax.sample import z_from_seeds
from _creator_fixtures import isolated_cache, sampler  # noqa: F401 (pytest fixtures)




def test_recovers_a_latent_the_network_made(sampler):
    z = z_from_seeds([7], sampler.z_dim)
    target = sampler.images_from_z(z, 0.5)[0]
    w_true = sampler.ws_from_z(z, 0.5)[0, 0]
    r = projector.project(sampler, target, distance.pixel(), num_steps=200, progress=False)
    assert r.distance == 'pixel-laplacian' and not r.noise_optimised and r.ws_steps.shape == (200, 8, 64)
    img = sampler.with_noise(r.noise).images_from_ws(r.ws[None])[0]
    assert projector.psnr(img, target) > 30
    start = np.linalg.norm(sampler.w_avg - w_true)
    assert np.linalg.norm(r.ws[0] - w_true) < 0.2 * start  # started at w_avg, ended near the true w
    assert np.allclose(r.ws, r.ws[0])                      # space w: one latent on every layer


def test_schedule_is_the_reference_ramps():
    lr, noise = projector.schedule(1000, w_std=2.0)
    assert lr[0] == 0 and lr[25] == pytest.approx(0.05) and lr[100] == pytest.approx(0.1)
    assert lr[875] == pytest.approx(0.1 * (0.5 - 0.5 * np.cos(0.5 * np.pi)))  # half-way down the cosine
    assert noise[0] == pytest.approx(2.0 * 0.05) and noise[750] == 0 and noise[375] == pytest.approx(0.1 * 0.25)


def test_noise_regularisation_is_zero_for_uncorrelated_maps():
    import jax.numpy as jnp
    checker = jnp.asarray(np.indices((8, 8)).sum(0) % 2 * 2 - 1.0)  # +-1 checkerboard: products with shifts = -1
    assert float(projector.noise_regularisation({'a': checker})) == pytest.approx(2.0)
    assert float(projector.noise_regularisation({'a': jnp.zeros((16, 16))})) == 0


def test_cli_files_and_rerender(fixtures_dir, tmp_path, capsys):
    ckpt = str(fixtures_dir / 'sg2ada' / 'network-snapshot.pkl')
    assert sample_cli.main(['--checkpoint', ckpt, '--seeds', '3', '--trunc', '0.5', '--outdir', str(tmp_path / 't')]) == 0
    big = Image.open(tmp_path / 't' / 'seed0003.png').resize((48, 40))  # not square, not the model size
    big.save(tmp_path / 'target.jpg')
    out = tmp_path / 'proj'
    assert project_cli.main(['--checkpoint', ckpt, '--target', str(tmp_path / 'target.jpg'), '--outdir', str(out),
                             '--steps', '30', '--space', 'w+', '--video-frames', '5']) == 0
    text = capsys.readouterr().out
    assert 'distance: pixel-laplacian' in text
    assert Image.open(out / 'proj.png').size == (32, 32) and Image.open(out / 'target.png').size == (32, 32)
    assert (out / 'proj.mp4').stat().st_size > 0
    saved = latents.load(out / 'projected_w.npz', 8, 64)
    assert saved.ws.shape == (1, 8, 64) and saved.noise and saved.meta['distance'] == 'pixel-laplacian'
    assert sample_cli.main(['--checkpoint', ckpt, '--projected-w', str(out / 'projected_w.npz'),
                            '--noise-mode', 'const', '--outdir', str(tmp_path / 'r')]) == 0
    again = np.asarray(Image.open(tmp_path / 'r' / 'proj00.png')).astype(int)
    assert np.abs(again - np.asarray(Image.open(out / 'proj.png'))).max() <= 2


@pytest.mark.parametrize('make, message', [
    (lambda p: None, 'no such target image'),
    (lambda p: p.mkdir(), 'is a directory'),
    (lambda p: p.write_text('<html>not an image</html>'), 'cannot read the target image'),
    (lambda p: p.write_bytes(open(__file__, 'rb').read()[:10]), 'cannot read the target image'),
])
def test_bad_targets_are_one_line(make, message, fixtures_dir, tmp_path, capsys):
    target = tmp_path / 'bad.png'
    make(target)
    rc = project_cli.main(['--checkpoint', str(fixtures_dir / 'sg2ada' / 'network-snapshot.pkl'),
                           '--target', str(target), '--outdir', str(tmp_path / 'o')])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith(f'stylegan-project: error: {target}: {message}')


def test_truncated_png_target(tmp_path):
    good = tmp_path / 'g.png'
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (64, 64, 3), np.uint8)).save(good)
    bad = tmp_path / 'cut.png'
    bad.write_bytes(good.read_bytes()[:300])
    with pytest.raises(projector.ProjectError, match='cut.png: cannot read the target image'):
        projector.load_target(bad, 32)


def _scripted_vgg(path):
    """A TorchScript archive named like the reference's vgg16.pt (layers.conv1..13, lpips0..4), random weights."""
    torch = pytest.importorskip('torch')
    torch.manual_seed(0)

    class Layers(torch.nn.Module):
        def __init__(self):
            super().__init__()
            cin, k = 3, 1
            for stage in vgg16.STAGES:
                for cout in stage:
                    setattr(self, f'conv{k}', torch.nn.Conv2d(cin, cout, 3, padding=1))
                    cin, k = cout, k + 1

        def forward(self, x):
            return x

    class VGG(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = Layers()
            for i, stage in enumerate(vgg16.STAGES):
                self.register_buffer(f'lpips{i}', torch.rand(stage[-1], 1, 1))

        def forward(self, x):
            return self.layers(x)

    model = torch.jit.script(VGG())
    model.save(str(path))
    return model


def _lpips_torch(model, a, b):
    """The LPIPS formula written directly in torch, on [-1, 1] NCHW images."""
    import torch
    import torch.nn.functional as F
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    feats = []
    for x in (a, b):
        x = (x - shift) / scale
        out, k = [], 1
        for s, stage in enumerate(vgg16.STAGES):
            if s:
                x = F.max_pool2d(x, 2)
            for _ in stage:
                x = F.relu(getattr(model.layers, f'conv{k}')(x))
                k += 1
            out.append(x / (x.norm(dim=1, keepdim=True) + 1e-10))
        feats.append(out)
    return sum((getattr(model, f'lpips{i}').view(1, -1, 1, 1) * (fa - fb) ** 2).sum(1).mean((1, 2))
               for i, (fa, fb) in enumerate(zip(*feats)))


def test_vgg16_torchscript_is_read_as_data_and_matches_lpips(tmp_path):
    import torch
    model = _scripted_vgg(tmp_path / 'vgg16.pt')
    d = distance.choose(vgg16_weights=tmp_path / 'vgg16.pt', inception_weights='ignored.pth')
    assert d.name == 'vgg16-lpips'
    rs = np.random.RandomState(1)
    a, b = (np.tanh(rs.randn(2, 32, 32, 3)).astype(np.float32) for _ in range(2))
    ours = np.asarray(d(a, b))
    with torch.no_grad():
        ref = _lpips_torch(model, torch.from_numpy(a).permute(0, 3, 1, 2), torch.from_numpy(b).permute(0, 3, 1, 2))
    np.testing.assert_allclose(ours, ref.numpy(), rtol=2e-4)
    with pytest.raises(vgg16.VGGWeightsError, match='missing layers.conv1.weight'):
        vgg16.params_from_state_dict({})


def test_inception_distance_uses_the_fid_features(fixtures_dir):
    from stylegan_jax.metrics import inception
    w = fixtures_dir / 'inception' / 'pt_inception-random.pth'
    d = distance.choose(inception_weights=w)
    assert d.name == 'inception-pool3'
    img = np.asarray(Image.open(sorted((fixtures_dir / 'inception' / 'real').glob('*.png'))[0]).convert('RGB'))
    ref = inception.FeatureExtractor(inception.load_params(w), 1)(img[None])['pool']
    np.testing.assert_allclose(np.asarray(d.features(img[None].astype(np.float32) / 127.5 - 1)), ref, atol=2e-3)


def test_pixel_distance_is_quadratic_and_multiscale():
    rs = np.random.RandomState(0)
    a = rs.rand(1, 32, 32, 3).astype(np.float32)
    d = distance.pixel()
    step = rs.randn(1, 32, 32, 3).astype(np.float32)
    d1, d2 = float(d(a, a + 1e-2 * step)[0]), float(d(a, a + 2e-2 * step)[0])
    assert d2 == pytest.approx(4 * d1, rel=1e-3)
    # A constant shift (pure low frequency) weighs more than its MSE alone: every pyramid level sees it.
    assert float(d(a, a + 0.1)[0]) > 2 * 0.01
