"""The browser studio: its functions, and the real page in headless Chromium (Playwright).

The browser test needs Debian's chromium (`apt-get install chromium`, which .ci/run does) and the
playwright Python package; it skips only when the chromium binary is absent.
"""
import io
import os
import shutil
import socket

import numpy as np
import pytest

from stylegan_jax import latents, studio
from stylegan_jax.sample import Sampler

CHROMIUM = os.environ.get('STYLEGAN_JAX_CHROMIUM') or shutil.which('chromium') or shutil.which('chromium-browser')
BROWSER_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                '--disable-component-update', '--disable-sync', '--no-first-run']


@pytest.fixture(scope='module')
def app_studio(fixtures_dir, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('STYLEGAN_JAX_CACHE', str(tmp_path_factory.mktemp('cache')))
        s = Sampler.from_checkpoint(fixtures_dir / 'sg2ada' / 'network-snapshot.pkl')
    return studio.Studio(s, workdir=str(tmp_path_factory.mktemp('studio')))


def test_style_groups():
    assert studio.style_layers(18, 'coarse') == [0, 1, 2, 3]
    assert studio.style_layers(18, 'middle') == [4, 5, 6, 7]
    assert studio.style_layers(18, 'fine') == list(range(8, 18))
    assert studio.style_layers(8, 'fine') == []  # 32x32: no fine layers
    with pytest.raises(studio.StudioError):
        studio.style_layers(8, 'hair')


def test_functions(app_studio):
    s = app_studio.sampler
    grid, png, npz = app_studio.seed_grid(3, 4, 0.5)
    assert grid.shape[0] >= studio.DISPLAY_CELL and os.path.isfile(png)
    saved = latents.load(npz, s.num_ws, s.cfg.w_dim)
    np.testing.assert_allclose(saved.ws, app_studio.ws([3, 4, 5, 6], 0.5))
    a, b, m, png, npz = app_studio.mix(1, 2, ['coarse'], 0.7)
    ws = app_studio.ws([1, 2], 0.7)
    want = ws[0].copy()
    want[:4] = ws[1][:4]
    np.testing.assert_allclose(latents.load(npz).ws[0], want)
    f = studio.DISPLAY_CELL // 32 + (studio.DISPLAY_CELL % 32 > 0)
    assert np.abs(m[::f, ::f].astype(int) - s.images_from_ws(want[None])[0]).max() <= 1
    a2, b2, everything, *_ = app_studio.mix(1, 2, list(studio.STYLE_GROUPS), 0.7)
    assert np.abs(everything.astype(int) - b2).max() <= 1  # all of B's styles: B itself
    with pytest.raises(studio.StudioError, match='upload a target'):
        app_studio.project(None, 10)
    proj, png, npz, report = app_studio.project(s.images_from_ws(ws[:1])[0], 20)
    assert 'pixel-laplacian' in report and latents.load(npz).noise


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _png(page, selector):
    from PIL import Image
    src = page.locator(f'{selector} img').first.get_attribute('src')
    return src, np.asarray(Image.open(io.BytesIO(page.request.get(src).body())).convert('RGB')).astype(int)


@pytest.mark.skipif(CHROMIUM is None, reason='chromium is not installed (apt-get install chromium)')
def test_in_a_real_browser(app_studio, tmp_path):
    sync_api = pytest.importorskip('playwright.sync_api')
    port = _free_port()
    app = studio.build_app(app_studio)
    studio.launch(app, port, block=False)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_page(viewport={'width': 1200, 'height': 900})
            page.goto(f'http://127.0.0.1:{port}/', wait_until='domcontentloaded')
            page.wait_for_selector('#grid img', timeout=120_000)          # the page loads, a seed grid renders
            src0, img0 = _png(page, '#grid')
            assert img0.shape[0] >= studio.DISPLAY_CELL
            page.screenshot(path=str(tmp_path / 'studio.png'))
            box = page.locator('#trunc input[type=range]').bounding_box()  # drag the truncation slider to 0
            page.mouse.click(box['x'] + 1, box['y'] + box['height'] / 2)
            page.wait_for_function(f'document.querySelector("#grid img").src != {src0!r}', timeout=120_000)
            src1, img1 = _png(page, '#grid')
            assert np.abs(img1 - img0).mean() > 1                          # the slider changed the image
            page.get_by_role('tab', name='Mix').click()
            page.click('#mix')
            page.wait_for_selector('#img-mix img', timeout=120_000)       # a mix renders
            _, mix = _png(page, '#img-mix')
            _, b = _png(page, '#img-b')
            assert mix.shape == b.shape and np.abs(mix - b).mean() > 1
            browser.close()
    finally:
        app.close()
