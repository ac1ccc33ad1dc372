"""Visible <-> infrared image translation (CycleGAN): networks, training, dataset translation, metrics."""

__version__ = "0.1.0"
