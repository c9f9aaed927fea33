"""SODGAN's learning stages on a BigGAN: the diffusion embedding network that inverts real images (den),
the few-shot set (fewshot), the mask generator with omni-attentive feature fusion (gmask) and the
quality-aware discriminator (dq).

Imports are left to the modules (importing the package loads nothing).
"""
