"""CPU transcriptions of the released memories' rules, for the tests to compare ours against, step by step.

- `CM`, `CMHard`: ADCA (yangbincv/ADCA @ 8d0a8cb) and PGM (zesenwu23/USL-VI-ReID @ ed4a7df)
  clustercontrast/models/cm.py lines 9-75 (`CM`, `CM_Hard`; both files hold the same code), and their
  `ClusterMemory.forward` (ADCA cm.py:90-100, PGM cm.py:90-100): `RefClusterMemory`.
- `CMHybrid`, `CMInstances`: PCLHD (shijiangming1/PCLHD @ c1f7b24) clustercontrast/models/cm.py lines 41-125
  (`CM_Hybrid`, `CM_Hard` with `num_instances`) and its `ClusterMemory.forward` (cm.py:157-191) for the modes
  'CM', 'CMhybrid' and 'CMhard' (model_name 'encoder' / 'encoder_ema'): `RefPCLHDMemory`.
- `generate_cluster_features`: the trainers' cluster means (e.g. PGM train_sysu.py:732-743).
- `generate_random_features`: PCLHD train_sysu.py:891-898 (instance k of cluster c at row k * C + c).
- `reference_cma`: ADCA adca_sysu_train.py:358-366 (`select_merge_data`) and 814-850 (the CMA block).

The references run on CUDA; here everything stays on the CPU (the `.cuda()` calls dropped), nothing else changed:
the memory updates live in the autograd functions' backward, exactly as in the released code, so running
`loss.backward()` on a graph built with these applies the updates in the order autograd's engine runs them.
"""
from __future__ import annotations

import collections
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F
from torch import autograd


# --------------------------------------------------------------------------- ADCA / PGM cm.py


class CM(autograd.Function):
    """cm.py `CM`: logits inputs @ features.T; backward: per instance, in batch order,
    features[y] <- momentum * features[y] + (1 - momentum) * x, then / its norm."""

    @staticmethod
    def forward(ctx, inputs, targets, features, momentum):
        ctx.features = features
        ctx.momentum = momentum
        ctx.save_for_backward(inputs, targets)
        return inputs.mm(ctx.features.t())

    @staticmethod
    def backward(ctx, grad_outputs):
        inputs, targets = ctx.saved_tensors
        grad_inputs = None
        if ctx.needs_input_grad[0]:
            grad_inputs = grad_outputs.mm(ctx.features)
        for x, y in zip(inputs, targets):
            ctx.features[y] = ctx.momentum * ctx.features[y] + (1. - ctx.momentum) * x
            ctx.features[y] /= ctx.features[y].norm()
        return grad_inputs, None, None, None


class CMHard(autograd.Function):
    """cm.py `CM_Hard` (ADCA / PGM): backward: once per label of the batch (in order of first appearance), the
    member with the lowest dot product with the label's current prototype (np.argmin: first on ties)."""

    @staticmethod
    def forward(ctx, inputs, targets, features, momentum):
        ctx.features = features
        ctx.momentum = momentum
        ctx.save_for_backward(inputs, targets)
        return inputs.mm(ctx.features.t())

    @staticmethod
    def backward(ctx, grad_outputs):
        inputs, targets = ctx.saved_tensors
        grad_inputs = None
        if ctx.needs_input_grad[0]:
            grad_inputs = grad_outputs.mm(ctx.features)
        batch_centers = collections.defaultdict(list)
        for instance_feature, index in zip(inputs, targets.tolist()):
            batch_centers[index].append(instance_feature)
        for index, features in batch_centers.items():
            distances = []
            for feature in features:
                distance = feature.unsqueeze(0).mm(ctx.features[index].unsqueeze(0).t())[0][0]
                distances.append(distance.cpu().numpy())
            median = np.argmin(np.array(distances))
            ctx.features[index] = ctx.features[index] * ctx.momentum + (1 - ctx.momentum) * features[median]
            ctx.features[index] /= ctx.features[index].norm()
        return grad_inputs, None, None, None


def momentum_tensor(momentum: float) -> torch.Tensor:
    """cm.py's `torch.Tensor([momentum])` (float32, shape [1])."""
    return torch.Tensor([momentum])


class RefClusterMemory:
    """ADCA / PGM cm.py `ClusterMemory.forward`: normalize, cm or cm_hard, / temp, F.cross_entropy.
    `features`: the buffer [C, D] (updated in place by the backward)."""

    def __init__(self, features: torch.Tensor, temp: float = 0.05, momentum: float = 0.1, use_hard: bool = False):
        self.features = features.clone().float()
        self.temp, self.momentum, self.use_hard = temp, momentum, use_hard

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        inputs = F.normalize(inputs, dim=1)
        function = CMHard if self.use_hard else CM
        outputs = function.apply(inputs, targets, self.features, momentum_tensor(self.momentum))
        outputs = outputs / self.temp  # the reference divides in place (`outputs /= self.temp`): the same values
        return F.cross_entropy(outputs, targets)


# --------------------------------------------------------------------------- PCLHD cm.py


class CMHybrid(autograd.Function):
    """PCLHD cm.py `CM_Hybrid`: features [2C, D] (centroids, then hard prototypes); backward, once per label of
    the batch: the members' dot products with the CENTROID slot (before it moves), the centroid moved towards the
    members' mean, the hard slot towards the member least similar to the centroid (np.argmin)."""

    @staticmethod
    def forward(ctx, inputs, targets, features, momentum):
        ctx.features = features
        ctx.momentum = momentum
        ctx.save_for_backward(inputs, targets)
        return inputs.mm(ctx.features.t())

    @staticmethod
    def backward(ctx, grad_outputs):
        inputs, targets = ctx.saved_tensors
        nums = len(ctx.features) // 2
        grad_inputs = None
        if ctx.needs_input_grad[0]:
            grad_inputs = grad_outputs.mm(ctx.features)
        batch_centers = collections.defaultdict(list)
        for instance_feature, index in zip(inputs, targets.tolist()):
            batch_centers[index].append(instance_feature)
        for index, features in batch_centers.items():
            distances = []
            for feature in features:
                distance = feature.unsqueeze(0).mm(ctx.features[index].unsqueeze(0).t())[0][0]
                distances.append(distance.cpu().numpy())
            mean = torch.stack(features, dim=0).mean(0)
            ctx.features[index] = ctx.features[index] * ctx.momentum + (1 - ctx.momentum) * mean
            ctx.features[index] /= ctx.features[index].norm()
            hard = np.argmin(np.array(distances))
            ctx.features[index + nums] = ctx.features[index + nums] * ctx.momentum + (1 - ctx.momentum) * features[hard]
            ctx.features[index + nums] /= ctx.features[index + nums].norm()
        return grad_inputs, None, None, None


class CMInstances(autograd.Function):
    """PCLHD cm.py `CM_Hard` (the instance memory `features_ema` [K * C, D]); backward, once per label of the
    batch: its K rows index + C * k replaced by K of its members drawn with `rng.choice` (without replacement when
    the label has >= 16 members in the batch, with replacement otherwise; the reference's literal 16)."""

    @staticmethod
    def forward(ctx, inputs, targets, features, momentum, num_instances, rng):
        ctx.features = features
        ctx.momentum = momentum
        ctx.num_instances = num_instances
        ctx.rng = rng
        ctx.save_for_backward(inputs, targets)
        return inputs.mm(ctx.features.t())

    @staticmethod
    def backward(ctx, grad_outputs):
        inputs, targets = ctx.saved_tensors
        nums = len(ctx.features) // ctx.num_instances
        grad_inputs = None
        if ctx.needs_input_grad[0]:
            grad_inputs = grad_outputs.mm(ctx.features)
        batch_centers = collections.defaultdict(list)
        for instance_feature, index in zip(inputs, targets.tolist()):
            batch_centers[index].append(instance_feature)
        for index, features in batch_centers.items():
            indexes = [index + nums * i for i in range(0, ctx.num_instances)]
            if len(features) >= 16:
                ids = ctx.rng.choice(len(features), len(indexes), replace=False)
            else:
                ids = ctx.rng.choice(len(features), len(indexes), replace=True)
            ctx.features[indexes] = torch.stack(features)[ids]
        return grad_inputs, None, None, None, None, None


class RefPCLHDMemory:
    """PCLHD cm.py `ClusterMemory` (smooth = 0: nn.CrossEntropyLoss) in mode 'CM', 'CMhybrid' or 'CMhard':
    `features` [C or 2C, D], `features_ema` [K * C, D] (mode 'CMhard')."""

    def __init__(self, features: torch.Tensor, mode: str = "CMhybrid", temp: float = 0.05, momentum: float = 0.1,
                 features_ema: torch.Tensor | None = None, num_instances: int = 16, rng=None):
        self.features = features.clone().float()
        self.features_ema = None if features_ema is None else features_ema.clone().float()
        self.mode, self.temp, self.momentum, self.num_instances = mode, temp, momentum, num_instances
        self.rng = np.random.default_rng(0) if rng is None else rng
        self.cross_entropy = torch.nn.CrossEntropyLoss()

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor, model_name: str = "encoder") -> torch.Tensor:
        inputs = F.normalize(inputs, dim=1)
        momentum = momentum_tensor(self.momentum)
        if self.mode == "CM":
            outputs = CM.apply(inputs, targets, self.features, momentum) / self.temp
            return self.cross_entropy(outputs, targets)
        if self.mode == "CMhybrid" or (self.mode == "CMhard" and model_name == "encoder"):
            outputs = CMHybrid.apply(inputs, targets, self.features, momentum) / self.temp
            mean, hard = torch.chunk(outputs, 2, dim=1)
            r = 0.2
            return 0.5 * (self.cross_entropy(hard, targets) + torch.relu(self.cross_entropy(mean, targets) - r))
        if self.mode == "CMhard" and model_name == "encoder_ema":
            outputs = CMInstances.apply(inputs, targets, self.features_ema, momentum, self.num_instances, self.rng)
            outputs = outputs / self.temp
            out_list = torch.chunk(outputs, self.num_instances, dim=1)
            out = torch.stack(out_list, dim=0)
            neg = torch.max(out, dim=0)[0]
            pos = torch.min(out, dim=0)[0]
            mask = torch.zeros_like(out_list[0]).scatter_(1, targets.unsqueeze(1), 1)
            mask_in = mask * pos + (1 - mask) * neg
            return self.cross_entropy(mask_in, targets)
        raise ValueError(self.mode)


# --------------------------------------------------------------------------- the trainers' set-up


def generate_cluster_features(labels, features: torch.Tensor) -> torch.Tensor:
    """[C, D]: the mean feature of each label, in sorted label order, -1 skipped (the trainers' helper)."""
    centers = collections.defaultdict(list)
    for i, label in enumerate(labels):
        if label == -1:
            continue
        centers[labels[i]].append(features[i])
    centers = [torch.stack(centers[idx], dim=0).mean(0) for idx in sorted(centers.keys())]
    return torch.stack(centers, dim=0)


def generate_random_features(labels: np.ndarray, features: torch.Tensor, num_cluster: int, num_instances: int,
                             rng) -> torch.Tensor:
    """PCLHD train_sysu.py:891-898: K members of each cluster drawn with replacement, instance k of cluster i at
    row i + k * num_cluster (the reference's float index array cast to int64 here)."""
    indexes = np.zeros(num_cluster * num_instances)
    for i in range(num_cluster):
        index = [i + k * num_cluster for k in range(num_instances)]
        samples = rng.choice(np.where(labels == i)[0], num_instances, True)
        indexes[index] = samples
    return features[indexes.astype(np.int64)]


# --------------------------------------------------------------------------- ADCA's CMA


def select_merge_data(dists: np.ndarray):
    """adca_sysu_train.py:358-366: every (rgb, ir) image pair, by decreasing similarity."""
    ind = np.unravel_index(np.argsort(dists, axis=None)[::-1], dists.shape)
    idx1, idx2 = ind[0], ind[1]
    return idx1, idx2, dists[idx1, idx2]


def reference_cma(memory_rgb: torch.Tensor, memory_ir: torch.Tensor, features_rgb: torch.Tensor,
                  features_ir: torch.Tensor, pseudo_labels_rgb, pseudo_labels_ir, threshold: float = 0.5,
                  lamda_cm: float = 0.1):
    """adca_sysu_train.py:814-850 on copies of the memories' features: returns (memory_rgb, memory_ir, the
    (rgb, ir) cluster pairs aggregated in order, the ranked ((rgb, ir), count) list the loop walks)."""
    memory_rgb, memory_ir = memory_rgb.clone(), memory_ir.clone()
    dist_cm = np.matmul(features_rgb.numpy(), np.transpose(features_ir.numpy()))
    idx1, idx2, dist_list = select_merge_data(dist_cm)
    idx_lenth = np.sum(dist_list >= threshold)
    rgb2ir_label = [(i, j) for i, j in zip(np.array(pseudo_labels_rgb)[idx1[:idx_lenth]],
                                           np.array(pseudo_labels_ir)[idx2[:idx_lenth]])]
    rgb2ir_label_cnt = Counter(rgb2ir_label)
    rgb2ir_label_cnt_sorted = sorted(rgb2ir_label_cnt.items(), key=lambda x: x[1], reverse=True)
    in_rgb_label, in_ir_label, pairs = [], [], []
    for i in range(int(len(rgb2ir_label_cnt_sorted) * 1.0)):
        key = rgb2ir_label_cnt_sorted[i][0]
        if key[0] == -1 or key[1] == -1:
            continue
        if key[0] in in_rgb_label or key[1] in in_ir_label:
            continue
        update_memory = memory_ir[key[1]]  # a view: the next line but one reads the row it writes
        memory_rgb[key[0]] = lamda_cm * memory_rgb[key[0]] + (1 - lamda_cm) * (update_memory)
        memory_ir[key[1]] = lamda_cm * memory_ir[key[1]] + (1 - lamda_cm) * (update_memory)
        in_rgb_label.append(key[0])
        in_ir_label.append(key[1])
        pairs.append((int(key[0]), int(key[1])))
    ranked = [((int(i), int(j)), count) for (i, j), count in rgb2ir_label_cnt_sorted]
    return memory_rgb, memory_ir, pairs, ranked


# --------------------------------------------------------------------------- shared test data


def unit(tensor: torch.Tensor) -> torch.Tensor:
    return F.normalize(tensor, dim=1)


def random_unit(rows: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    return unit(torch.randn(rows, dim, generator=generator))


def clustered_batch(prototypes: torch.Tensor, labels, noise: float, generator: torch.Generator) -> torch.Tensor:
    """Unit features [B, D] near prototypes[labels] (random unit rows for -1 labels)."""
    labels = torch.as_tensor(labels)
    centres = prototypes[labels.clamp_min(0)]
    centres = torch.where((labels >= 0).unsqueeze(1), centres, random_unit(len(labels), prototypes.shape[1],
                                                                          generator))
    return unit(centres + noise * torch.randn(centres.shape, generator=generator))


def reference_step(memory, features: torch.Tensor, labels: torch.Tensor, **options):
    """One forward + backward of a reference memory on the rows with a cluster (the references' loaders never draw
    -1): (loss, d loss / d features [B, D] with zeros on -1 rows, the memory's buffer after the backward)."""
    keep = labels >= 0
    inputs = features[keep].detach().clone().requires_grad_()
    loss = memory(inputs, labels[keep], **options)
    loss.backward()
    grad = torch.zeros_like(features)
    grad[keep] = inputs.grad
    return loss.detach(), grad, memory.features


def our_step(memory, features: torch.Tensor, labels: torch.Tensor):
    """Ours: loss, backward, then the explicit update: (loss, d loss / d features [B, D], prototypes after)."""
    inputs = features.detach().clone().requires_grad_()
    loss = memory.loss(inputs, labels)
    loss.backward()
    memory.update(inputs, labels)
    return loss.detach(), inputs.grad, memory.prototypes
