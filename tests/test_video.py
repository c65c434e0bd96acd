"""Latent-walk videos: the interpolation, batched frames equal single renders, the MP4/GIF files, errors."""
import numpy as np
import pytest

from stylegan_jax import video
from stylegan_jax.cli import video as video_cli
from stylegan_jax.sample import image_grid
from _creator_fixtures import isolated_cache, sampler  # noqa: F401 (pytest fixtures)




@pytest.mark.parametrize('kind', ['cubic', 'linear'])
@pytest.mark.parametrize('loop', [True, False])
def test_walk_passes_through_keyframes(kind, loop):
    keys = np.random.RandomState(0).randn(3, 5, 2, 4).astype(np.float32)  # 3 cells, 5 keyframes
    walk = video.interpolate(keys, 6, kind, loop)
    assert walk.shape == ((30 if loop else 25), 3, 2, 4)
    for k in range(5 if not loop else 5):
        np.testing.assert_allclose(walk[k * 6], keys[:, k], atol=1e-5)
    if kind == 'linear':
        np.testing.assert_allclose(walk[3], (keys[:, 0] + keys[:, 1]) / 2, atol=1e-5)
    if loop:  # the frame after the last one would be the first keyframe again: the loop closes smoothly
        np.testing.assert_allclose(video.interpolate(keys, 6, kind, True, frames=[30])[0], keys[:, 0], atol=1e-5)


def test_frames_are_the_single_images_in_a_grid(sampler):
    keys = video.seed_keyframes(sampler, [0, 1, 2, 3, 4, 5, 6, 7], (2, 2), trunc=0.7)
    assert keys.shape == (4, 2, 8, 64)
    walk = video.interpolate(keys, 3, 'linear', loop=True)
    frames = list(video.render_frames(sampler, walk, (2, 2), batch=5, chunk_frames=4))  # batches cut across frames
    assert len(frames) == 6 and frames[0].shape == (64, 64, 3)
    one = sampler.images_from_ws(walk[4], batch=4)
    assert np.abs(frames[4].astype(int) - image_grid(one, cols=2)).max() <= 1
    with pytest.raises(video.VideoError, match='multiple of 4'):
        video.seed_keyframes(sampler, [0, 1, 2], (2, 2))


def test_cli_mp4_and_gif_fallback(fixtures_dir, tmp_path, monkeypatch, capsys):
    iio = pytest.importorskip('imageio.v3')
    ckpt = str(fixtures_dir / 'sg2ada' / 'network-snapshot.pkl')
    out = tmp_path / 'v.mp4'
    assert video_cli.main(['--checkpoint', ckpt, '--seeds', '0-7', '--grid', '2x2', '--w-frames', '4',
                           '--output', str(out), '--strip', str(tmp_path / 's.png')]) == 0
    assert 'frames/s' in capsys.readouterr().out
    frames = iio.imread(out)
    assert frames.shape == (8, 64, 64, 3)
    assert iio.imread(tmp_path / 's.png').shape == (64, 6 * 64 + 5 * 4, 3)
    monkeypatch.setattr(video, 'ffmpeg_available', lambda: False)
    assert video_cli.main(['--checkpoint', ckpt, '--seeds', '0-1', '--w-frames', '3', '--no-loop',
                           '--output', str(tmp_path / 'w.mp4')]) == 0
    assert not (tmp_path / 'w.mp4').exists() and iio.imread(tmp_path / 'w.gif').shape[0] == 4


@pytest.mark.parametrize('args, message', [
    (['--grid', '2y2'], "bad grid '2y2'"),
    (['--seeds', '0-2', '--grid', '2x1'], '3 seeds cannot be dealt to a 2x1 grid'),
    (['--output', '{t}/v.avi'], 'must end in .mp4 or .gif'),
    (['--output', '{t}/nodir/v.mp4'], 'nodir: no such directory'),
    (['--projected-w', '{t}/none.npz'], 'none.npz: no such latents file'),
])
def test_cli_errors(args, message, fixtures_dir, tmp_path, capsys):
    args = [a.replace('{t}', str(tmp_path)) for a in args]
    if '--output' not in args:
        args += ['--output', str(tmp_path / 'v.mp4')]
    rc = video_cli.main(['--checkpoint', str(fixtures_dir / 'sg2ada' / 'network-snapshot.pkl'), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-1].startswith('stylegan-video: error: ') and message in err[-1]
