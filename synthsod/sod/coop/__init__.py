"""Cooperative saliency (LVM + EBM): the energy model (ebm), the latent-variable predictor (lvm), their
cooperative learning and refinement (model) and the training loop on the SOD trainer's batches (train).

Imports are left to the modules (importing the package loads nothing).
"""
