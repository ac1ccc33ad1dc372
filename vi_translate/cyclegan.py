"""One CycleGAN training step, as in the reference: the generators step with the discriminators
frozen, then the discriminators step on real images and pooled fakes. Each loss term is returned."""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import nn

from reid.runtime import average_gradients

from .config import NetworkConfig, TranslatorTrainConfig
from .image_pool import ImagePool
from .losses import GANLoss, cycle_loss, identity_loss
from .networks import PatchDiscriminator, ResnetGenerator

VIS_CHANNELS = 3


class NonFiniteLoss(FloatingPointError):
    """A loss term came out NaN or infinite; `.name` and `.value` say which."""

    def __init__(self, name: str, value: float) -> None:
        self.name, self.value = name, value
        super().__init__(f"non-finite loss {name} = {value}")


@dataclass
class CycleGANNets:
    """The four networks: g_vis2ir: vis [B, 3] -> ir [B, C_ir]; g_ir2vis the reverse; d_vis and d_ir
    judge visible and infrared images ([B, C, H, W] -> patch logits [B, 1, h, w])."""

    g_vis2ir: nn.Module
    g_ir2vis: nn.Module
    d_vis: nn.Module
    d_ir: nn.Module

    def generators(self) -> list[nn.Module]:
        return [self.g_vis2ir, self.g_ir2vis]

    def discriminators(self) -> list[nn.Module]:
        return [self.d_vis, self.d_ir]

    def modules(self) -> dict[str, nn.Module]:
        return {"g_vis2ir": self.g_vis2ir, "g_ir2vis": self.g_ir2vis, "d_vis": self.d_vis, "d_ir": self.d_ir}


def build_nets(model: NetworkConfig, ir_channels: int) -> CycleGANNets:
    """Freshly initialised generators and discriminators for `ir_channels`-channel infrared images."""
    return CycleGANNets(
        g_vis2ir=ResnetGenerator(VIS_CHANNELS, ir_channels, ngf=model.ngf, n_blocks=model.n_blocks),
        g_ir2vis=ResnetGenerator(ir_channels, VIS_CHANNELS, ngf=model.ngf, n_blocks=model.n_blocks),
        d_vis=PatchDiscriminator(VIS_CHANNELS, ndf=model.ndf, n_layers=model.n_layers_d),
        d_ir=PatchDiscriminator(ir_channels, ndf=model.ndf, n_layers=model.n_layers_d),
    )


@dataclass
class Translations:
    """fake_ir = G_vis2ir(vis), rec_vis = G_ir2vis(fake_ir); fake_vis = G_ir2vis(ir), rec_ir = G_vis2ir(fake_vis)."""

    fake_ir: torch.Tensor
    rec_vis: torch.Tensor
    fake_vis: torch.Tensor
    rec_ir: torch.Tensor

    def detached(self) -> Translations:
        return Translations(*(t.detach().float() for t in (self.fake_ir, self.rec_vis, self.fake_vis, self.rec_ir)))


def translate_both_ways(nets: CycleGANNets, vis: torch.Tensor, ir: torch.Tensor) -> Translations:
    """Both translations and both reconstructions of a batch of visible [B, 3] and infrared [B, C_ir] images."""
    fake_ir = nets.g_vis2ir(vis)
    fake_vis = nets.g_ir2vis(ir)
    return Translations(fake_ir=fake_ir, rec_vis=nets.g_ir2vis(fake_ir), fake_vis=fake_vis, rec_ir=nets.g_vis2ir(fake_vis))


@dataclass
class StepTools:
    """What a training step needs besides the networks and the batch."""

    criterion: GANLoss
    optimizer_g: torch.optim.Optimizer
    optimizer_d: torch.optim.Optimizer
    pools: dict[str, ImagePool]  # "vis", "ir"
    lambda_cycle: float
    lambda_identity: float  # relative to lambda_cycle, as in the reference
    ir_channels: int
    autocast: contextlib.AbstractContextManager | None = None
    distributed: bool = False

    @classmethod
    def build(cls, nets: CycleGANNets, train: TranslatorTrainConfig, ir_channels: int,
              pool_generators: dict[str, torch.Generator]) -> StepTools:
        """Adam (lr, beta1) over both generators and over both discriminators, history pools, the GAN loss."""
        betas = (train.beta1, 0.999)
        return cls(
            criterion=GANLoss(train.gan_mode),
            optimizer_g=torch.optim.Adam([p for g in nets.generators() for p in g.parameters()], lr=train.lr, betas=betas),
            optimizer_d=torch.optim.Adam([p for d in nets.discriminators() for p in d.parameters()], lr=train.lr,
                                         betas=betas),
            pools={m: ImagePool(train.pool_size, generator=pool_generators[m]) for m in ("vis", "ir")},
            lambda_cycle=train.lambda_cycle, lambda_identity=train.lambda_identity, ir_channels=ir_channels)


def train_step(nets: CycleGANNets, vis: torch.Tensor, ir: torch.Tensor, tools: StepTools) -> dict[str, float]:
    """One generator step, then one discriminator step. vis: [B, 3, H, W], ir: [B, C_ir, H, W] in [-1, 1].

    Returns every loss term (weighted as optimised). Raises NonFiniteLoss before any optimiser
    step that would apply a NaN or infinite loss.
    """
    set_requires_grad(nets.discriminators(), False)
    generator_losses, translations = generator_step(nets, vis, ir, tools)
    set_requires_grad(nets.discriminators(), True)
    discriminator_losses = discriminator_step(nets, vis, ir, translations, tools)
    return generator_losses | discriminator_losses


def generator_step(nets: CycleGANNets, vis: torch.Tensor, ir: torch.Tensor, tools: StepTools
                   ) -> tuple[dict[str, float], Translations]:
    """Adversarial, cycle and identity losses of both generators; one optimiser step."""
    with tools.autocast or contextlib.nullcontext():
        translations = translate_both_ways(nets, vis, ir)
        cycle_weight = tools.lambda_cycle
        losses = {
            "G_vis2ir": tools.criterion(nets.d_ir(translations.fake_ir), True, for_discriminator=False),
            "G_ir2vis": tools.criterion(nets.d_vis(translations.fake_vis), True, for_discriminator=False),
            "cycle_vis": cycle_weight * cycle_loss(translations.rec_vis, vis),
            "cycle_ir": cycle_weight * cycle_loss(translations.rec_ir, ir),
        }
        identity_weight = tools.lambda_identity * tools.lambda_cycle
        if identity_weight > 0:
            losses["idt_ir"] = identity_weight * identity_loss(nets.g_vis2ir, ir, VIS_CHANNELS)  # G_vis2ir(ir) ~ ir
            losses["idt_vis"] = identity_weight * identity_loss(nets.g_ir2vis, vis, tools.ir_channels)
    _optimise(losses, tools.optimizer_g, nets.generators(), tools.distributed)
    return _as_floats(losses), translations.detached()


def discriminator_step(nets: CycleGANNets, vis: torch.Tensor, ir: torch.Tensor, translations: Translations,
                       tools: StepTools) -> dict[str, float]:
    """Each discriminator: real images as real, pooled earlier fakes as fake, halved; one optimiser step."""
    fake_vis = tools.pools["vis"].query(translations.fake_vis)
    fake_ir = tools.pools["ir"].query(translations.fake_ir)
    with tools.autocast or contextlib.nullcontext():
        losses = {
            "D_vis": 0.5 * (tools.criterion(nets.d_vis(vis), True) + tools.criterion(nets.d_vis(fake_vis), False)),
            "D_ir": 0.5 * (tools.criterion(nets.d_ir(ir), True) + tools.criterion(nets.d_ir(fake_ir), False)),
        }
    _optimise(losses, tools.optimizer_d, nets.discriminators(), tools.distributed)
    return _as_floats(losses)


def set_requires_grad(modules: list[nn.Module], flag: bool) -> None:
    """Freeze (False) or unfreeze (True) every parameter of `modules`."""
    for module in modules:
        for parameter in module.parameters():
            parameter.requires_grad_(flag)


def _optimise(losses: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer, modules: list[nn.Module],
              distributed: bool) -> None:
    for name, value in losses.items():
        if not math.isfinite(value.item()):
            raise NonFiniteLoss(name, value.item())
    optimizer.zero_grad(set_to_none=True)
    sum(losses.values()).backward()
    if distributed:
        average_gradients(modules)
    optimizer.step()


def _as_floats(losses: dict[str, torch.Tensor]) -> dict[str, float]:
    return {name: float(value.item()) for name, value in losses.items()}
