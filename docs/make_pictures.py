"""Make the README's pictures of the creator tools (docs/img/*.png) from the 32x32 fixture network.

    python docs/make_pictures.py [--checkpoint ../shared/fixtures/sg2ada/network-snapshot.pkl]

projection.png  target | start (w_avg) | steps 50, 200 | final (1000 steps, pixel distance), enlarged 4x
video_strip.png six frames of a looping 2x2 cubic walk (seeds 0-7, 30 frames per keyframe), enlarged 2x
studio.png      the studio page in headless Chromium after a mix (needs chromium + playwright)

The fixture network has random weights, so the faces are abstract colour fields: the pictures show
what each tool writes, not image quality.
"""
from __future__ import annotations

import argparse
import shutil
import socket
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / 'docs' / 'img'


def enlarge(img: np.ndarray, f: int) -> np.ndarray:
    return np.repeat(np.repeat(img, f, axis=0), f, axis=1)


def projection(sampler) -> None:
    from stylegan_jax import projector
    from stylegan_jax.perceptual import distance
    from stylegan_jax.sample import image_grid, save_png, z_from_seeds

    target = sampler.images_from_z(z_from_seeds([7], sampler.z_dim), 0.5)[0]
    r = projector.project(sampler, target, distance.pixel(), num_steps=1000, progress=False)
    steps = [0, 49, 199, 999]
    imgs = sampler.with_noise(r.noise).images_from_ws(r.ws_steps[steps])
    start = sampler.images_from_ws(np.repeat(sampler.w_avg[None, None], sampler.num_ws, axis=1))[0]
    cells = [target, start, imgs[1], imgs[2], imgs[3]]
    save_png(OUT / 'projection.png', enlarge(image_grid(np.stack(cells), cols=len(cells), pad=2), 4))
    print(f'projection: PSNR {projector.psnr(imgs[3], target):.1f} dB')


def video_strip(sampler) -> None:
    from stylegan_jax import video
    from stylegan_jax.sample import save_png

    keys = video.seed_keyframes(sampler, list(range(8)), (2, 2), trunc=0.7)
    walk = video.interpolate(keys, 30, 'cubic', True)
    idx = np.linspace(0, len(walk) - 1, 6).round().astype(int)
    frames = list(video.render_frames(sampler, walk[idx], (2, 2)))
    save_png(OUT / 'video_strip.png', enlarge(video.frame_strip(frames), 2))


def studio_shot(sampler) -> None:
    from playwright.sync_api import sync_playwright

    from stylegan_jax import studio

    chromium = shutil.which('chromium') or shutil.which('chromium-browser')
    if chromium is None:
        print('no chromium: studio.png skipped', file=sys.stderr)
        return
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    app = studio.build_app(studio.Studio(sampler))
    studio.launch(app, port, block=False)
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=chromium, args=['--headless', '--no-sandbox', '--disable-gpu',
                                                                 '--disable-background-networking', '--no-first-run'])
            page = b.new_page(viewport={'width': 1100, 'height': 760})
            page.goto(f'http://127.0.0.1:{port}/', wait_until='domcontentloaded')
            page.wait_for_selector('#grid img', timeout=120_000)
            page.get_by_role('tab', name='Mix').click()
            page.click('#mix')
            page.wait_for_selector('#img-mix img', timeout=120_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(OUT / 'studio.png'))
            b.close()
    finally:
        app.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--checkpoint', default=str(REPO.parent / 'shared' / 'fixtures' / 'sg2ada' / 'network-snapshot.pkl'))
    args = p.parse_args()
    from stylegan_jax.sample import Sampler

    OUT.mkdir(parents=True, exist_ok=True)
    sampler = Sampler.from_checkpoint(args.checkpoint)
    projection(sampler)
    video_strip(sampler)
    studio_shot(sampler)
    return 0


if __name__ == '__main__':
    sys.exit(main())
