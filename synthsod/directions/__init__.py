"""Latent directions: the built contrast direction (contrast), Voynov & Babenko's unsupervised discovery
(discovery), E-BigBiGAN's segmenting-direction search (search) and its direction-shift masks (shift),
and the direction files every stage reads (files; numpy only, like shift).

Imports are left to the modules (importing the package loads nothing).
"""
