"""synthsod: synthetic salient-object-detection datasets from pretrained GANs."""

__version__ = "0.1.0"
