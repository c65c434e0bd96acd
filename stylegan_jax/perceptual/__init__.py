"""Image distances for projection and PPL: VGG16 LPIPS features, FID Inception features, pixels + pyramid.

vgg16.py     the LPIPS VGG16 of the StyleGAN2-ADA metrics in Flax; reads the reference's `vgg16.pt`
             (a TorchScript archive) as data
distance.py  `Distance`: one feature map f per choice, distance(a, b) = ||f(a) - f(b)||^2; `choose`
"""
