"""ReID model zoo: two-stream (visible / infrared stem, shared trunk) ResNets as in AGW and ADCA-style
unsupervised methods, a tiny backbone for tests, GeM pooling, BN neck."""
from __future__ import annotations

from .loading import build_model_from_config, load_model_checkpoint, save_model_checkpoint
from .nonlocal_block import AGW_NON_LOCAL_COUNTS, NonLocal
from .pooling import GeM
from .registry import ARCHITECTURES, build_model
from .resnet import ResNetTrunk, two_stream_resnet
from .plain import plain_two_stream, tiny_two_stream
from .two_stream import TwoStreamNet, bn_neck
from .weights import (SHIPPED_STARTS, TORCHVISION_FILES, hub_checkpoint_dir, load_backbone, load_pretrained,
                      load_resnet_weights, read_backbone, resolve_weights, save_backbone)

__all__ = [
    "ARCHITECTURES", "build_model", "build_model_from_config", "load_model_checkpoint", "save_model_checkpoint", "TwoStreamNet", "ResNetTrunk", "NonLocal", "GeM", "bn_neck",
    "AGW_NON_LOCAL_COUNTS", "two_stream_resnet", "plain_two_stream", "tiny_two_stream", "TORCHVISION_FILES", "hub_checkpoint_dir",
    "resolve_weights", "load_resnet_weights", "load_pretrained", "load_backbone", "read_backbone", "save_backbone",
    "SHIPPED_STARTS",
]
