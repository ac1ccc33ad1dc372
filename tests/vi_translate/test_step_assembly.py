"""The CycleGAN step's loss assembly with stub networks of known outputs, against the reference's formulas
(junyanz/pytorch-CycleGAN-and-pix2pix models/cycle_gan_model.py `backward_G`, `backward_D_basic`):

    G_A = MSE(D_B(G_A(A)), 1); cycle_A = lambda_A * L1(G_B(G_A(A)), A); idt_A = lambda_B * lambda_idt * L1(G_A(B), B)
    D = 0.5 * (MSE(D(real), 1) + MSE(D(fake_pool.query(fake)), 0))

Every weight, the halving of both discriminators' losses and the pools' query are pinned: a generator is
x -> w x, a discriminator x -> mean(x) + b per image, each pool a stub that records what it is asked and hands
back an image of its own.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vi_translate.cyclegan import CycleGANNets, StepTools, train_step
from vi_translate.losses import GANLoss


class Scale(nn.Module):
    """A generator: x -> w * x."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x):
        return self.w * x


class MeanJudge(nn.Module):
    """A discriminator: [B, C, H, W] -> [B, 1, 1, 1] = mean of each image + b."""

    def __init__(self, b: float) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.tensor(b))

    def forward(self, x):
        return x.mean(dim=(1, 2, 3), keepdim=True) + self.b


class StubPool:
    """Hands back `fill` (the shape of the query) and records the queried images."""

    def __init__(self, fill: float) -> None:
        self.fill, self.queried = fill, []

    def query(self, images):
        self.queried.append(images.detach().clone())
        return torch.full_like(images, self.fill)


def mse(prediction, target: float):
    return F.mse_loss(prediction, torch.full_like(prediction, target))


@pytest.mark.parametrize("lambda_cycle, lambda_identity", [(10.0, 0.5), (4.0, 0.25)])
def test_every_loss_term_is_weighted_halved_and_pooled_as_the_reference(lambda_cycle, lambda_identity):
    generator = torch.Generator().manual_seed(0)
    vis = torch.rand(2, 3, 4, 4, generator=generator) * 2 - 1
    ir = torch.rand(2, 3, 4, 4, generator=generator) * 2 - 1
    w_vis2ir, w_ir2vis, b_vis, b_ir = 0.7, -0.4, 0.3, -0.2
    nets = CycleGANNets(g_vis2ir=Scale(w_vis2ir), g_ir2vis=Scale(w_ir2vis), d_vis=MeanJudge(b_vis),
                        d_ir=MeanJudge(b_ir))
    pools = {"vis": StubPool(0.25), "ir": StubPool(-0.5)}
    tools = StepTools(criterion=GANLoss("lsgan"),
                      optimizer_g=torch.optim.SGD([p for g in nets.generators() for p in g.parameters()], lr=0.0),
                      optimizer_d=torch.optim.SGD([p for d in nets.discriminators() for p in d.parameters()], lr=0.0),
                      pools=pools, lambda_cycle=lambda_cycle, lambda_identity=lambda_identity, ir_channels=3)
    losses = train_step(nets, vis, ir, tools)

    def judge(x, b):
        return x.mean(dim=(1, 2, 3), keepdim=True) + b

    fake_ir, fake_vis = w_vis2ir * vis, w_ir2vis * ir
    expected = {
        "G_vis2ir": mse(judge(fake_ir, b_ir), 1.0),
        "G_ir2vis": mse(judge(fake_vis, b_vis), 1.0),
        "cycle_vis": lambda_cycle * F.l1_loss(w_ir2vis * fake_ir, vis),
        "cycle_ir": lambda_cycle * F.l1_loss(w_vis2ir * fake_vis, ir),
        "idt_ir": lambda_cycle * lambda_identity * F.l1_loss(w_vis2ir * ir, ir),
        "idt_vis": lambda_cycle * lambda_identity * F.l1_loss(w_ir2vis * vis, vis),
        "D_vis": 0.5 * (mse(judge(vis, b_vis), 1.0) + mse(judge(torch.full_like(vis, 0.25), b_vis), 0.0)),
        "D_ir": 0.5 * (mse(judge(ir, b_ir), 1.0) + mse(judge(torch.full_like(ir, -0.5), b_ir), 0.0)),
    }
    assert set(losses) == set(expected)
    for name, value in expected.items():
        assert losses[name] == pytest.approx(value.item(), rel=1e-6), name
    # each pool was asked once, with this step's fakes of its modality
    assert len(pools["vis"].queried) == 1 and len(pools["ir"].queried) == 1
    torch.testing.assert_close(pools["vis"].queried[0], fake_vis)
    torch.testing.assert_close(pools["ir"].queried[0], fake_ir)
