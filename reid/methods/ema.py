"""An exponential-moving-average teacher (mean teacher), as PCLHD's `model_ema` (trainers.py
`_update_ema_variables`): a copy of the student whose parameters follow theta <- m theta + (1 - m) theta_student
after every iteration. Only parameters are averaged; the teacher's BatchNorm statistics come from its own forward
passes (it runs in train mode, under no_grad, on the student's batches), as in the reference."""
from __future__ import annotations

import copy

import torch
from torch import nn


def make_teacher(student: nn.Module) -> nn.Module:
    """A copy of `student` (weights and buffers) that no optimiser sees: requires_grad off."""
    teacher = copy.deepcopy(student)
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


@torch.no_grad()
def update_teacher(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """theta_teacher <- momentum * theta_teacher + (1 - momentum) * theta_student, parameter by parameter."""
    for mean, current in zip(teacher.parameters(), student.parameters()):
        mean.mul_(momentum).add_(current.detach(), alpha=1 - momentum)
