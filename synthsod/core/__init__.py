"""Shared machinery every stage uses: atomic file writes (io), resumable checkpoints, GPU leases, progress
lines, figure saving, image files, timm backbones and the torchvision compatibility step. Nothing here
knows a pipeline stage.

Imports are left to the modules (importing the package loads nothing).
"""
