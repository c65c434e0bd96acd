"""Writes tests/data/sg2ada_d_arch.npz: the reference StyleGAN2-ADA discriminator in its 'orig' and
'skip' architectures (random init), with input images and its logits, for tests/test_networks.py.

    SG2ADA=/path/to/stylegan2-ada-pytorch python tests/data/make_sg2ada_d_arch.py

The reference code is imported from $SG2ADA at run time (never copied here); what is stored is its
output: float32 tensors (PyTorch layouts, state-dict names) and numbers. CPU only (the reference's
custom ops fall back to their reference implementations). ~60 KB.
"""
import os
import pathlib
import sys

import numpy as np

OUT = pathlib.Path(__file__).with_name('sg2ada_d_arch.npz')
# 16x16, channels min(64 // res, 8): b16 4 -> b8 8 -> b4 8; mbstd groups of 2 over a batch of 4.
KWARGS = dict(c_dim=0, img_resolution=16, img_channels=3, channel_base=64, channel_max=8, conv_clamp=256,
              epilogue_kwargs=dict(mbstd_group_size=2, mbstd_num_channels=1))


def main() -> int:
    sg2ada = os.environ.get('SG2ADA')
    if not sg2ada or not pathlib.Path(sg2ada, 'training', 'networks.py').is_file():
        print('make_sg2ada_d_arch.py: error: set SG2ADA to a stylegan2-ada-pytorch checkout', file=sys.stderr)
        return 2
    sys.path.insert(0, sg2ada)
    import torch
    from training.networks import Discriminator

    torch.manual_seed(0)
    img = torch.rand(4, 3, 16, 16) * 2 - 1
    out = {'img': img.numpy(), 'kwargs': np.array(repr(KWARGS))}
    for arch in ('orig', 'skip', 'resnet'):
        d = Discriminator(architecture=arch, **KWARGS).eval()
        with torch.no_grad():
            for name, p in d.named_parameters():  # non-zero biases, so a missing bias would show
                if name.endswith('bias'):
                    p.copy_(torch.randn_like(p) * 0.1)
            logits = d(img, None)
        for name, t in d.state_dict().items():
            if not name.endswith('resample_filter'):
                out[f'{arch}/{name}'] = t.numpy().astype(np.float32)
        out[f'{arch}/logits'] = logits.numpy().astype(np.float32)
    np.savez_compressed(OUT, **out)
    print(f'wrote {OUT} ({OUT.stat().st_size} bytes)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
