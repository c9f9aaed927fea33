"""Salient object detection models and their training: PyTorch views of prepared datasets and shards
(datasets), the model registry (models), losses, the resumable trainer (train), prediction (predict)
and simulated point labels; the cooperative LVM + EBM model in coop/ and ATAL's active learning in atal/.

Imports are left to the modules (importing the package loads nothing).
"""
