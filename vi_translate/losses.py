"""CycleGAN losses: the adversarial loss (lsgan / vanilla / hinge), the cycle-consistency L1 and the
identity L1, the latter made to work between 3-channel visible and 1-channel infrared images.

Structure-keeping terms between a generator's input and its output (options of the translator, off by default):
- PatchNCE (Park et al. 2020, CUT; taesungp/contrastive-unpaired-translation @ b3ac297, models/patchnce.py and
  models/cut_model.py `calculate_NCE_loss`): `patch_nce_loss` (the InfoNCE of one layer), `draw_patch_ids` and
  `patch_nce` (a generator's encoder on input and output, shared patch locations, the projection heads, the mean over
  layers);
- `structure_loss`: 1 - SSIM of the luminance greys (`ssim_structure_loss`) or the L1 between their per-image
  normalised Sobel magnitudes (`edge_structure_loss`).
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence

import kornia
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


def identity_l1(produced: Tensor, real_target: Tensor) -> Tensor:
    """Identity L1 of an output already computed: mean |produced - real_target| over equal shapes -> scalar."""
    _require_same_shape("generator output", produced, real_target)
    return F.l1_loss(produced, real_target)


def identity_loss(generator: nn.Module, real_target: Tensor, source_channels: int) -> Tensor:
    """Identity L1: mean |G(match_channels(real_target, source_channels)) - real_target| -> scalar.

    `generator` maps the source domain (`source_channels` channels) to the domain of `real_target`
    [B, C_target, H, W]: G_vis2ir is given an ir image, G_ir2vis a vis image, and each should return it
    unchanged. The reference refuses identity loss when channel counts differ; `match_channels` converts
    the target-domain image to the generator's input channels instead (grey repeated, or luma).
    """
    return identity_l1(generator(match_channels(real_target, source_channels)), real_target)


# --------------------------------------------------------------------------- PatchNCE (CUT)

NCE_TEMPERATURE = 0.07  # CUT --nce_T
NCE_PATCHES = 256  # CUT --num_patches
# CUT fills the negatives' diagonal (a query against its own positive key) with -10 before dividing by the
# temperature (patchnce.py:44-47), so the positive is also among the "negatives" with weight exp(-10 / T) ~ 0
MASKED_LOGIT = -10.0


def _full_precision(tensor: Tensor) -> contextlib.AbstractContextManager:
    """Autocast off on the tensor's device (the losses below run in float32 even inside a bf16 region)."""
    return torch.autocast(device_type=tensor.device.type, enabled=False)


def patch_nce_loss(feat_q: Tensor, feat_k: Tensor, temperature: float = NCE_TEMPERATURE) -> Tensor:
    """CUT's `PatchNCELoss` with `nce_includes_all_negatives_from_minibatch` False: [B, P, D] x [B, P, D] -> [B, P].

    feat_q: the output's projected patches, feat_k: the input's, at the same P locations of each of B images,
    L2-normalised rows. For query (b, i) the logits are its dot product with key (b, i) (the positive, the same
    location) and with every key (b, j) of the SAME image (the negatives; j = i filled with -10), all / temperature;
    the loss is the cross-entropy with the positive as class 0. feat_k is detached (patchnce.py:16): gradients flow
    through the queries only. Computed in float32 for half-precision inputs.
    """
    if feat_q.dim() != 3 or feat_q.shape != feat_k.shape:
        raise ValueError(f"feat_q and feat_k must both be [B, P, D] of one shape, got {tuple(feat_q.shape)} and "
                         f"{tuple(feat_k.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    with _full_precision(feat_q):
        q, k = _in_float32(feat_q), _in_float32(feat_k.detach())
        batch, patches = q.shape[:2]
        positive = (q * k).sum(-1, keepdim=True)  # [B, P, 1]
        negatives = torch.bmm(q, k.transpose(1, 2))  # [B, P, P]
        diagonal = torch.eye(patches, dtype=torch.bool, device=q.device)
        negatives = negatives.masked_fill(diagonal, MASKED_LOGIT)
        logits = torch.cat([positive, negatives], dim=-1) / temperature  # [B, P, 1 + P]
        target = torch.zeros(batch * patches, dtype=torch.long, device=q.device)
        return F.cross_entropy(logits.flatten(0, 1), target, reduction="none").view(batch, patches)


def draw_patch_ids(features: Sequence[Tensor], num_patches: int, generator: torch.Generator) -> list[Tensor]:
    """Per feature map [B, C, H, W]: `randperm(H * W, generator=generator)[:num_patches]` (CPU int64 indices into the
    row-major H x W grid; all of them, in random order, when H * W <= num_patches), one set for every image of the
    batch, as CUT's `PatchSampleF` (networks.py:566-568, with numpy's global RNG there)."""
    if isinstance(num_patches, bool) or not isinstance(num_patches, int) or num_patches < 1:
        raise ValueError(f"num_patches must be an integer >= 1, got {num_patches!r}")
    return [torch.randperm(f.shape[-2] * f.shape[-1], generator=generator)[:num_patches] for f in features]


def patch_nce(generator: nn.Module, heads: nn.Module, source: Tensor, output: Tensor, layers: Sequence[int], *,
              num_patches: int = NCE_PATCHES, temperature: float = NCE_TEMPERATURE,
              patch_generator: torch.Generator) -> Tensor:
    """CUT's `calculate_NCE_loss(src, tgt)` (cut_model.py:198-214) without lambda_NCE -> scalar.

    generator: a `ResnetGenerator` with `encode(x, layers)` and `in_channels`; heads: its `PatchSampleMLP` (one head
    per layer). source: the generator's input [B, in_channels, H, W]; output: what it made of it [B, C_out, H, W],
    brought to in_channels with `match_channels` (1 -> 3 repeats the grey, 3 -> 1 takes the luma) because the
    encoder expects its input domain's channels (CUT feeds G(x) to G's encoder as it is: there both domains have 3).
    Per layer, one set of locations is drawn (`draw_patch_ids` from `patch_generator`) and shared by the input's
    (keys) and the output's (queries) features; the loss is the mean over layers of the mean `patch_nce_loss`.
    The keys carry no gradient in CUT (detached after the heads), so they are computed under no_grad here.
    """
    if source.dim() != 4 or source.shape[1] != generator.in_channels:
        raise ValueError(f"source must be [B, {generator.in_channels}, H, W] (the generator's input), got "
                         f"{tuple(source.shape)}")
    query_features = generator.encode(match_channels(output, generator.in_channels), layers)
    with torch.no_grad():
        key_features = generator.encode(source, layers)
        patch_ids = draw_patch_ids(key_features, num_patches, patch_generator)
        keys = heads(key_features, patch_ids)
    queries = heads(query_features, patch_ids)
    total = sum(patch_nce_loss(q, k, temperature).mean() for q, k in zip(queries, keys))
    return total / len(keys)


# --------------------------------------------------------------------------- structure terms

STRUCTURE_KINDS = ("ssim", "edges")
EDGE_EPS = 1e-12  # inside the Sobel magnitude's square root (a finite gradient where the image is flat)
EDGE_NORM_EPS = 1e-6  # added to each image's largest magnitude before dividing by it


def grey(images: Tensor) -> Tensor:
    """[B, 1 or 3, H, W] -> [B, 1, H, W]: the BT.601 luma of a 3-channel image, a 1-channel image as it is."""
    return match_channels(images, 1)


def ssim_structure_loss(source: Tensor, output: Tensor) -> Tensor:
    """1 - SSIM between the greys of `output` and `source` ([B, C, H, W] in [-1, 1], any of 1 or 3 channels each),
    averaged over the batch -> scalar in [0, 2]: `vi_translate.metrics.ssim` (Gaussian window 11, sigma 1.5, on
    [0, 1]), in float32, differentiable; 0 for identical greys."""
    from .metrics import ssim  # metrics imports this module

    _require_same_spatial(source, output)
    with _full_precision(output):
        return (1.0 - ssim(grey(_in_float32(output)), grey(_in_float32(source)))).mean()


def edge_magnitude(images: Tensor) -> Tensor:
    """The Sobel gradient magnitude of the grey of [B, C, H, W] images, divided by each image's largest value:
    [B, 1, H, W] in [0, 1). `kornia.filters.sobel` (normalised 3x3 kernels, replicated border,
    sqrt(gx^2 + gy^2 + 1e-12)); the per-image division (+ 1e-6) makes the map independent of the image's contrast,
    which differs between the modalities."""
    magnitude = kornia.filters.sobel(grey(_in_float32(images)), normalized=True, eps=EDGE_EPS)
    return magnitude / (magnitude.amax(dim=(1, 2, 3), keepdim=True) + EDGE_NORM_EPS)


def edge_structure_loss(source: Tensor, output: Tensor) -> Tensor:
    """Edge agreement: mean |edge_magnitude(output) - edge_magnitude(source)| -> scalar; 0 for identical greys."""
    _require_same_spatial(source, output)
    with _full_precision(output):
        return F.l1_loss(edge_magnitude(output), edge_magnitude(source))


def structure_loss(source: Tensor, output: Tensor, kind: str = "ssim") -> Tensor:
    """The structure term between a generator's input and output: kind "ssim" (`ssim_structure_loss`) or "edges"
    (`edge_structure_loss`) -> scalar; gradients flow to both."""
    if kind == "ssim":
        return ssim_structure_loss(source, output)
    if kind == "edges":
        return edge_structure_loss(source, output)
    raise ValueError(f"kind must be one of {STRUCTURE_KINDS}, got {kind!r}")


def _require_same_spatial(source: Tensor, output: Tensor) -> None:
    if source.dim() != 4 or output.dim() != 4 or source.shape[0] != output.shape[0] or \
            source.shape[-2:] != output.shape[-2:]:
        raise ValueError(f"source and output must be [B, C, H, W] with the same B, H and W, got "
                         f"{tuple(source.shape)} and {tuple(output.shape)}")
