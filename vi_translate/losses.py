"""CycleGAN losses: the adversarial loss (lsgan / vanilla / hinge), the cycle-consistency L1 and the
identity L1, the latter made to work between 3-channel visible and 1-channel infrared images."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GAN_MODES = ("lsgan", "vanilla", "hinge")
# ITU-R BT.601 luma weights (R, G, B). They sum to 1, so the luma of an image normalised per channel by the
# same affine map (e.g. [0, 1] -> [-1, 1]) is the normalised luma: the conversion works in either range.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def _in_float32(prediction: Tensor) -> Tensor:
    """Half-precision predictions (under autocast) are promoted so the loss is computed in float32."""
    return prediction.float() if prediction.dtype in (torch.float16, torch.bfloat16) else prediction


class GANLoss(nn.Module):
    """The adversarial loss on discriminator logits of any shape (e.g. [B, 1, h, w] patch maps) -> scalar.

    mode "lsgan": MSE to 1 (real) / 0 (fake), the reference CycleGAN's choice; "vanilla": BCE-with-logits
    to 1 / 0; "hinge": discriminator mean(relu(1 - pred)) for real, mean(relu(1 + pred)) for fake, and
    generator -mean(pred). The generator calls `loss(pred_on_fake, True, for_discriminator=False)`.
    Targets are built like the prediction at each call, so the module holds no buffers.
    """

    def __init__(self, mode: str = "lsgan") -> None:
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"mode must be one of {GAN_MODES}, got {mode!r}")
        self.mode = mode

    def forward(self, prediction: Tensor, target_is_real: bool, for_discriminator: bool = True) -> Tensor:
        """prediction: logits of any shape; returns the scalar loss (float32 for half-precision logits)."""
        prediction = _in_float32(prediction)
        if self.mode == "hinge":
            return self._hinge(prediction, target_is_real, for_discriminator)
        target = prediction.new_full((), 1.0 if target_is_real else 0.0).expand_as(prediction)
        if self.mode == "lsgan":
            return F.mse_loss(prediction, target)
        return F.binary_cross_entropy_with_logits(prediction, target)

    @staticmethod
    def _hinge(prediction: Tensor, target_is_real: bool, for_discriminator: bool) -> Tensor:
        if not for_discriminator:
            if not target_is_real:
                raise ValueError("target_is_real must be True for the hinge generator loss (-mean(pred))")
            return -prediction.mean()
        sign = -1.0 if target_is_real else 1.0
        return F.relu(1.0 + sign * prediction).mean()

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


def _require_same_shape(name: str, produced: Tensor, expected: Tensor) -> None:
    if produced.shape != expected.shape:
        raise ValueError(f"{name} has shape {tuple(produced.shape)}, expected {tuple(expected.shape)}")


def cycle_loss(reconstructed: Tensor, real: Tensor) -> Tensor:
    """Cycle-consistency L1: mean |reconstructed - real| over [B, C, H, W] tensors of equal shape -> scalar."""
    _require_same_shape("reconstructed", reconstructed, real)
    return F.l1_loss(reconstructed, real)


def match_channels(images: Tensor, channels: int) -> Tensor:
    """[B, C, H, W] -> [B, channels, H, W]: unchanged when C == channels; 1 -> n repeats the grey channel;
    3 -> 1 takes the ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B. Other conversions raise ValueError.

    This is what lets the identity loss run between 3-channel visible and 1-channel infrared images: the
    identity term feeds a target-domain image to the generator producing that domain and expects it back
    unchanged, and converting it to the generator's input channels keeps that meaning (an infrared image
    repeated to 3 channels is still that infrared image; a visible image's luma is its grey rendering).
    """
    if images.dim() != 4:
        raise ValueError(f"images must be [B, C, H, W], got shape {tuple(images.shape)}")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be an integer >= 1, got {channels!r}")
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1:
        return images.repeat(1, channels, 1, 1)
    if have == 3 and channels == 1:
        weights = torch.tensor(LUMA_WEIGHTS, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        return (images * weights).sum(dim=1, keepdim=True)
    raise ValueError(f"cannot convert {have}-channel images to channels={channels} "
                     "(supported: equal, 1 -> n by repetition, 3 -> 1 by luma)")


def identity_loss(generator: nn.Module, real_target: Tensor, source_channels: int) -> Tensor:
    """Identity L1: mean |G(match_channels(real_target, source_channels)) - real_target| -> scalar.

    `generator` maps the source domain (`source_channels` channels) to the domain of `real_target`
    [B, C_target, H, W]: G_vis2ir is given an ir image, G_ir2vis a vis image, and each should return it
    unchanged. The reference refuses identity loss when channel counts differ; `match_channels` converts
    the target-domain image to the generator's input channels instead (grey repeated, or luma).
    """
    produced = generator(match_channels(real_target, source_channels))
    _require_same_shape("generator output", produced, real_target)
    return F.l1_loss(produced, real_target)
