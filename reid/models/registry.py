"""The architectures `build_model` knows."""
from __future__ import annotations

import logging
import os
from functools import partial
from typing import Callable

from torch import nn

from .resnet import two_stream_resnet
from .plain import plain_two_stream
from .two_stream import TwoStreamNet
from .weights import load_pretrained

logger = logging.getLogger(__name__)

# Each builder takes (*, non_local, gem_p); the partials fix each architecture's defaults. build_model loads the start.
ARCHITECTURES: dict[str, Callable[..., TwoStreamNet]] = {
    "agw_resnet50": partial(two_stream_resnet, "resnet50", non_local=True),
    "resnet50": partial(two_stream_resnet, "resnet50", non_local=False),
    "resnet18": partial(two_stream_resnet, "resnet18", non_local=False),
    "small": partial(plain_two_stream, "small"),
    "tiny": partial(plain_two_stream, "tiny"),
}


def build_model(arch: str = "agw_resnet50", *, non_local: bool | None = None,
                pretrained: str | os.PathLike | None = None, gem_p: float = 3.0) -> nn.Module:
    """A two-stream ReID model from ARCHITECTURES; `non_local=None` keeps the architecture's default;
    `pretrained`: None (random init), "imagenet" (torch hub cache), a torchvision .pth path, a `vireid pretrain`
    backbone file, or "synthetic-visible" (the start shipped for `small`): `reid.models.weights.load_pretrained`."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {sorted(ARCHITECTURES)}")
    overrides = {} if non_local is None else {"non_local": non_local}
    model = ARCHITECTURES[arch](gem_p=gem_p, **overrides)
    if pretrained is not None:
        load_pretrained(model, arch, pretrained)
    logger.info("built %s: %d parameters, %d-d features", arch, sum(p.numel() for p in model.parameters()),
                model.feature_dim)
    return model
