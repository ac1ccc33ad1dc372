"""One CycleGAN training step, as in the reference: the generators step with the discriminators
frozen, then the discriminators step on real images and pooled fakes. Each loss term is returned.

Structure-keeping options join the generators' step (all off by default: the reference recipe, unchanged):
PatchNCE between each generator's input and output with its own projection heads (CUT), a structure term
(SSIM or edges) between them, and lambda_cycle 0 for a one-sided translator (no reconstructions, no cycle terms).
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from reid.runtime import average_gradients

from .config import NetworkConfig, TranslatorTrainConfig
from .image_pool import ImagePool
from .losses import GANLoss, cycle_loss, identity_l1, match_channels, patch_nce, structure_loss
from .networks import PatchDiscriminator, PatchSampleMLP, ResnetGenerator

VIS_CHANNELS = 3


class NonFiniteLoss(FloatingPointError):
    """A loss term came out NaN or infinite; `.name` and `.value` say which."""

    def __init__(self, name: str, value: float) -> None:
        self.name, self.value = name, value
        super().__init__(f"non-finite loss {name} = {value}")


@dataclass
class CycleGANNets:
    """The four networks: g_vis2ir: vis [B, 3] -> ir [B, C_ir]; g_ir2vis the reverse; d_vis and d_ir
    judge visible and infrared images ([B, C, H, W] -> patch logits [B, 1, h, w]). With PatchNCE, each generator
    also has its projection heads (`PatchSampleMLP`, CUT's netF): heads_vis2ir, heads_ir2vis (else None)."""

    g_vis2ir: nn.Module
    g_ir2vis: nn.Module
    d_vis: nn.Module
    d_ir: nn.Module
    heads_vis2ir: nn.Module | None = None
    heads_ir2vis: nn.Module | None = None

    def generators(self) -> list[nn.Module]:
        return [self.g_vis2ir, self.g_ir2vis]

    def discriminators(self) -> list[nn.Module]:
        return [self.d_vis, self.d_ir]

    def heads(self) -> list[nn.Module]:
        """The PatchNCE projection heads ([] without PatchNCE)."""
        return [h for h in (self.heads_vis2ir, self.heads_ir2vis) if h is not None]

    def modules(self) -> dict[str, nn.Module]:
        """Every network by name (the checkpoint's keys): the four, and the heads when present."""
        heads = {"heads_vis2ir": self.heads_vis2ir, "heads_ir2vis": self.heads_ir2vis}
        return {"g_vis2ir": self.g_vis2ir, "g_ir2vis": self.g_ir2vis, "d_vis": self.d_vis, "d_ir": self.d_ir} | \
            {name: module for name, module in heads.items() if module is not None}


def build_nets(model: NetworkConfig, ir_channels: int, nce_layers: Sequence[int] | None = None,
               nce_units: int = 256) -> CycleGANNets:
    """Freshly initialised generators and discriminators for `ir_channels`-channel infrared images; with
    `nce_layers`, also each generator's PatchNCE heads (`nce_units` wide, CUT's netF_nc 256), built after the four
    networks, so the networks' initial weights are those of a run without PatchNCE."""
    nets = CycleGANNets(
        g_vis2ir=ResnetGenerator(VIS_CHANNELS, ir_channels, ngf=model.ngf, n_blocks=model.n_blocks),
        g_ir2vis=ResnetGenerator(ir_channels, VIS_CHANNELS, ngf=model.ngf, n_blocks=model.n_blocks),
        d_vis=PatchDiscriminator(VIS_CHANNELS, ndf=model.ndf, n_layers=model.n_layers_d),
        d_ir=PatchDiscriminator(ir_channels, ndf=model.ndf, n_layers=model.n_layers_d),
    )
    if nce_layers is not None:
        nets.heads_vis2ir = PatchSampleMLP(nets.g_vis2ir.encoder_channels(nce_layers), nce_units)
        nets.heads_ir2vis = PatchSampleMLP(nets.g_ir2vis.encoder_channels(nce_layers), nce_units)
    return nets


@dataclass
class Translations:
    """fake_ir = G_vis2ir(vis), rec_vis = G_ir2vis(fake_ir); fake_vis = G_ir2vis(ir), rec_ir = G_vis2ir(fake_vis).
    The reconstructions are None when not computed (a one-sided translator, lambda_cycle 0)."""

    fake_ir: torch.Tensor
    rec_vis: torch.Tensor | None
    fake_vis: torch.Tensor
    rec_ir: torch.Tensor | None

    def detached(self) -> Translations:
        return Translations(*(None if t is None else t.detach().float()
                              for t in (self.fake_ir, self.rec_vis, self.fake_vis, self.rec_ir)))


def translate_both_ways(nets: CycleGANNets, vis: torch.Tensor, ir: torch.Tensor, reconstruct: bool = True
                        ) -> Translations:
    """Both translations and (when `reconstruct`) both reconstructions of a batch of visible [B, 3] and infrared
    [B, C_ir] images."""
    fake_ir = nets.g_vis2ir(vis)
    fake_vis = nets.g_ir2vis(ir)
    if not reconstruct:
        return Translations(fake_ir=fake_ir, rec_vis=None, fake_vis=fake_vis, rec_ir=None)
    return Translations(fake_ir=fake_ir, rec_vis=nets.g_ir2vis(fake_ir), fake_vis=fake_vis, rec_ir=nets.g_vis2ir(fake_vis))


@dataclass
class StepTools:
    """What a training step needs besides the networks and the batch.

    PatchNCE (lambda_nce > 0) needs the nets' heads, `optimizer_heads` (CUT's optimizer_F: Adam at the generators'
    lr and betas) and `nce_generator`, the CPU torch.Generator the patch locations are drawn from (a checkpoint holds
    its state, as it holds the pools', so a resumed run draws what the uninterrupted one would).
    """

    criterion: GANLoss
    optimizer_g: torch.optim.Optimizer
    optimizer_d: torch.optim.Optimizer
    pools: dict[str, ImagePool]  # "vis", "ir"
    lambda_cycle: float
    lambda_identity: float  # relative to lambda_cycle, as in the reference
    ir_channels: int
    autocast: contextlib.AbstractContextManager | None = None
    distributed: bool = False
    lambda_nce: float = 0.0
    nce_layers: list[int] = field(default_factory=list)
    nce_patches: int = 256
    nce_temperature: float = 0.07
    nce_idt: bool = False
    optimizer_heads: torch.optim.Optimizer | None = None
    nce_generator: torch.Generator | None = None
    lambda_structure: float = 0.0
    structure: str = "ssim"

    @classmethod
    def build(cls, nets: CycleGANNets, train: TranslatorTrainConfig, ir_channels: int,
              pool_generators: dict[str, torch.Generator], nce_generator: torch.Generator | None = None) -> StepTools:
        """Adam (lr, beta1) over both generators and over both discriminators, history pools, the GAN loss; with
        lambda_nce > 0 also Adam over the nets' heads (build them with `build_nets(..., nce_layers=...)`) and the patch
        generator (`nce_generator`; when None, one seeded from torch's global RNG)."""
        betas = (train.beta1, 0.999)
        tools = cls(
            criterion=GANLoss(train.gan_mode),
            optimizer_g=torch.optim.Adam([p for g in nets.generators() for p in g.parameters()], lr=train.lr, betas=betas),
            optimizer_d=torch.optim.Adam([p for d in nets.discriminators() for p in d.parameters()], lr=train.lr,
                                         betas=betas),
            pools={m: ImagePool(train.pool_size, generator=pool_generators[m]) for m in ("vis", "ir")},
            lambda_cycle=train.lambda_cycle, lambda_identity=train.lambda_identity, ir_channels=ir_channels,
            lambda_structure=train.lambda_structure, structure=train.structure)
        if train.lambda_nce > 0:
            if len(nets.heads()) != 2:
                raise ValueError("train.lambda_nce > 0 needs each generator's PatchNCE heads: build the nets with "
                                 "build_nets(model, ir_channels, nce_layers=train.nce_layers)")
            if nce_generator is None:
                nce_generator = torch.Generator().manual_seed(int(torch.randint(2 ** 62, ()).item()))
            elif nce_generator.device.type != "cpu":
                raise ValueError(f"nce_generator must be a CPU torch.Generator, got one on {nce_generator.device}")
            tools.lambda_nce, tools.nce_layers, tools.nce_idt = train.lambda_nce, list(train.nce_layers), train.nce_idt
            tools.nce_patches, tools.nce_temperature = train.nce_patches, train.nce_temperature
            tools.nce_generator = nce_generator
            tools.optimizer_heads = torch.optim.Adam([p for h in nets.heads() for p in h.parameters()], lr=train.lr,
                                                     betas=betas)
        return tools

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimiser by its checkpoint name: optimizer_g, optimizer_d, and optimizer_heads with PatchNCE."""
        heads = {"optimizer_heads": self.optimizer_heads} if self.optimizer_heads is not None else {}
        return {"optimizer_g": self.optimizer_g, "optimizer_d": self.optimizer_d} | heads


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
    """Adversarial, cycle and identity losses of both generators, and the structure-keeping terms that are on;
    one optimiser step (of the generators, and of the PatchNCE heads with them).

    Terms, each weighted as optimised: G_vis2ir, G_ir2vis; cycle_vis, cycle_ir (lambda_cycle > 0); idt_ir, idt_vis
    (lambda_identity * lambda_cycle > 0); nce_vis2ir, nce_ir2vis = lambda_nce * PatchNCE(input, output) of each
    generator, and with nce_idt nce_idt_ir, nce_idt_vis = PatchNCE(y, G(y)) on the target domain, all four then at
    lambda_nce / 2 (CUT: (NCE + NCE_Y) / 2); structure_vis2ir, structure_ir2vis (lambda_structure > 0).
    """
    nce_on, structure_on = tools.lambda_nce > 0, tools.lambda_structure > 0
    with tools.autocast or contextlib.nullcontext():
        translations = translate_both_ways(nets, vis, ir, reconstruct=tools.lambda_cycle > 0)
        losses = {
            "G_vis2ir": tools.criterion(nets.d_ir(translations.fake_ir), True, for_discriminator=False),
            "G_ir2vis": tools.criterion(nets.d_vis(translations.fake_vis), True, for_discriminator=False),
        }
        if tools.lambda_cycle > 0:
            losses["cycle_vis"] = tools.lambda_cycle * cycle_loss(translations.rec_vis, vis)
            losses["cycle_ir"] = tools.lambda_cycle * cycle_loss(translations.rec_ir, ir)
        identity_weight = tools.lambda_identity * tools.lambda_cycle
        nce_idt = nce_on and tools.nce_idt
        if identity_weight > 0 or nce_idt:
            # the target-domain images in the generators' input channels, and what the generators make of them
            ir_in, vis_in = match_channels(ir, VIS_CHANNELS), match_channels(vis, tools.ir_channels)
            idt_ir, idt_vis = nets.g_vis2ir(ir_in), nets.g_ir2vis(vis_in)
        if identity_weight > 0:
            losses["idt_ir"] = identity_weight * identity_l1(idt_ir, ir)  # G_vis2ir(ir) ~ ir
            losses["idt_vis"] = identity_weight * identity_l1(idt_vis, vis)
        if nce_on:
            weight = tools.lambda_nce * (0.5 if nce_idt else 1.0)
            fake_ir, fake_vis = translations.fake_ir, translations.fake_vis
            losses["nce_vis2ir"] = weight * _patch_nce(nets.g_vis2ir, nets.heads_vis2ir, vis, fake_ir, tools)
            losses["nce_ir2vis"] = weight * _patch_nce(nets.g_ir2vis, nets.heads_ir2vis, ir, fake_vis, tools)
            if nce_idt:
                losses["nce_idt_ir"] = weight * _patch_nce(nets.g_vis2ir, nets.heads_vis2ir, ir_in, idt_ir, tools)
                losses["nce_idt_vis"] = weight * _patch_nce(nets.g_ir2vis, nets.heads_ir2vis, vis_in, idt_vis, tools)
        if structure_on:
            weight, kind = tools.lambda_structure, tools.structure
            losses["structure_vis2ir"] = weight * structure_loss(vis, translations.fake_ir, kind)
            losses["structure_ir2vis"] = weight * structure_loss(ir, translations.fake_vis, kind)
    optimizers = [tools.optimizer_g] + ([tools.optimizer_heads] if nce_on else [])
    _optimise(losses, optimizers, nets.generators() + (nets.heads() if nce_on else []), tools.distributed)
    return _as_floats(losses), translations.detached()


def _patch_nce(generator: nn.Module, heads: nn.Module, source: torch.Tensor, output: torch.Tensor,
               tools: StepTools) -> torch.Tensor:
    return patch_nce(generator, heads, source, output, tools.nce_layers, num_patches=tools.nce_patches,
                     temperature=tools.nce_temperature, patch_generator=tools.nce_generator)


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
    _optimise(losses, [tools.optimizer_d], nets.discriminators(), tools.distributed)
    return _as_floats(losses)


def set_requires_grad(modules: list[nn.Module], flag: bool) -> None:
    """Freeze (False) or unfreeze (True) every parameter of `modules`."""
    for module in modules:
        for parameter in module.parameters():
            parameter.requires_grad_(flag)


def _optimise(losses: dict[str, torch.Tensor], optimizers: list[torch.optim.Optimizer], modules: list[nn.Module],
              distributed: bool) -> None:
    for name, value in losses.items():
        if not math.isfinite(value.item()):
            raise NonFiniteLoss(name, value.item())
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    sum(losses.values()).backward()
    if distributed:
        average_gradients(modules)
    for optimizer in optimizers:
        optimizer.step()


def _as_floats(losses: dict[str, torch.Tensor]) -> dict[str, float]:
    return {name: float(value.item()) for name, value in losses.items()}
