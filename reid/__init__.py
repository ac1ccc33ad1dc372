"""Unsupervised visible-infrared person re-identification: data, models, clustering, training, evaluation."""

__version__ = "0.1.0"
