"""Tests for the shipped demo model (stylegan_jax/assets): it matches its checksums, loads as the
transfer source of configs/demo.py with every tensor's shape, and damaged copies are refused."""
import shutil
import subprocess
import sys

import pytest

from stylegan_jax import assets
from stylegan_jax.train import run_config, transfer
from stylegan_jax.train.config_files import load_config

from conftest import REPO


def test_shipped_model_matches_checksums_and_is_small():
    path = assets.demo_model_path()
    assert path.is_dir(), 'the demo model is not in the package (stylegan_jax/assets/demo_portraits32)'
    n = assets.verify_checksums(path)
    files = [p for p in path.rglob('*') if p.is_file()]
    assert n == len(files) - 1 >= 4                                   # every file but SHA256SUMS is listed
    assert sum(p.stat().st_size for p in files) < 8 << 20            # "a few MB"
    assert assets.demo_model_path(verify=True) == path


def test_shipped_model_is_the_demo_configs_transfer_source():
    c = load_config(REPO / 'configs' / 'demo.py')
    assert c.transfer.path == str(assets.demo_model_path())          # absolute: any cwd works
    src_cfg, nets = transfer.load_transfer_source(c.transfer.path)
    assert set(nets) == {'G_ema', 'G', 'D'}
    assert src_cfg == run_config.network_config(c)                    # same architecture: everything copies
    assert src_cfg == run_config.network_config(load_config(REPO / 'configs' / 'demo_pretrain.py'))


def test_damaged_copies_are_refused(tmp_path):
    copy = tmp_path / 'model'
    shutil.copytree(assets.demo_model_path(), copy)
    victim = max((p for p in copy.rglob('*') if p.is_file() and p.name != assets.CHECKSUMS),
                 key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    rel = victim.relative_to(copy).as_posix()
    with pytest.raises(ValueError, match=f'{rel} does not match its SHA-256'):
        assets.verify_checksums(copy)
    r = subprocess.run([sys.executable, '-m', 'stylegan_jax.assets', 'verify', str(copy)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        f'stylegan_jax.assets: error: {copy}: {rel} does not match its SHA-256 in SHA256SUMS (changed or damaged)']
    victim.unlink()
    with pytest.raises(ValueError, match=f'{rel} is missing'):
        assets.verify_checksums(copy)
    shutil.copy(assets.demo_model_path() / rel, victim)
    (copy / 'extra.bin').write_bytes(b'x')
    with pytest.raises(ValueError, match='extra.bin is not listed'):
        assets.verify_checksums(copy)
    with pytest.raises(ValueError, match='no SHA256SUMS'):
        assets.verify_checksums(tmp_path)
