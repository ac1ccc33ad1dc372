"""CPU transcription of CUT's PatchNCE rules, for the tests to compare `vi_translate.losses.patch_nce` against.

taesungp/contrastive-unpaired-translation @ b3ac297708dfb6f7589d04662277e53c0d579c27:
- `PatchNCELoss`: models/patchnce.py:6-55 (the options it reads, batch_size, nce_T and
  nce_includes_all_negatives_from_minibatch, passed as arguments);
- `Normalize`: models/networks.py:449-458;
- `PatchSampleF.forward` with use_mlp: models/networks.py:553-583 (the MLPs passed in instead of created at the first
  call, networks.py:543-551; numpy's global RNG draws the locations when no patch ids are given);
- `encode_only`: `ResnetGenerator.forward(input, layers, encode_only=True)`, models/networks.py:987-1004, run on any
  `nn.Sequential` `model` (ours has the reference CycleGAN layout);
- `calculate_NCE_loss`: models/cut_model.py:198-214 (netG's encoder and netF passed in; the patch ids of the keys
  may be given, so a test can share them with our sampler).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


class PatchNCELoss(nn.Module):
    def __init__(self, batch_size, nce_T=0.07, nce_includes_all_negatives_from_minibatch=False):
        super().__init__()
        self.batch_size, self.nce_T = batch_size, nce_T
        self.nce_includes_all_negatives_from_minibatch = nce_includes_all_negatives_from_minibatch
        self.cross_entropy_loss = torch.nn.CrossEntropyLoss(reduction='none')
        self.mask_dtype = torch.bool

    def forward(self, feat_q, feat_k):
        num_patches = feat_q.shape[0]
        dim = feat_q.shape[1]
        feat_k = feat_k.detach()
        l_pos = torch.bmm(feat_q.view(num_patches, 1, -1), feat_k.view(num_patches, -1, 1))
        l_pos = l_pos.view(num_patches, 1)
        if self.nce_includes_all_negatives_from_minibatch:
            batch_dim_for_bmm = 1
        else:
            batch_dim_for_bmm = self.batch_size
        feat_q = feat_q.view(batch_dim_for_bmm, -1, dim)
        feat_k = feat_k.view(batch_dim_for_bmm, -1, dim)
        npatches = feat_q.size(1)
        l_neg_curbatch = torch.bmm(feat_q, feat_k.transpose(2, 1))
        diagonal = torch.eye(npatches, device=feat_q.device, dtype=self.mask_dtype)[None, :, :]
        l_neg_curbatch.masked_fill_(diagonal, -10.0)
        l_neg = l_neg_curbatch.view(-1, npatches)
        out = torch.cat((l_pos, l_neg), dim=1) / self.nce_T
        loss = self.cross_entropy_loss(out, torch.zeros(out.size(0), dtype=torch.long, device=feat_q.device))
        return loss


def normalize(x, power=2):
    norm = x.pow(power).sum(1, keepdim=True).pow(1. / power)
    return x.div(norm + 1e-7)


def patch_sample_f(mlps, feats, num_patches=64, patch_ids=None):
    """PatchSampleF.forward (use_mlp=True): mlps[i] is `mlp_<i>`."""
    return_ids = []
    return_feats = []
    for feat_id, feat in enumerate(feats):
        feat_reshape = feat.permute(0, 2, 3, 1).flatten(1, 2)
        if patch_ids is not None:
            patch_id = patch_ids[feat_id]
        else:
            patch_id = np.random.permutation(feat_reshape.shape[1])
            patch_id = patch_id[:int(min(num_patches, patch_id.shape[0]))]
        patch_id = torch.tensor(patch_id, dtype=torch.long, device=feat.device)
        x_sample = feat_reshape[:, patch_id, :].flatten(0, 1)
        x_sample = mlps[feat_id](x_sample)
        return_ids.append(patch_id)
        x_sample = normalize(x_sample)
        return_feats.append(x_sample)
    return return_feats, return_ids


def encode_only(model, input, layers):
    """ResnetGenerator.forward(input, layers, encode_only=True) over `model` (an nn.Sequential)."""
    feat = input
    feats = []
    for layer_id, layer in enumerate(model):
        feat = layer(feat)
        if layer_id in layers:
            feats.append(feat)
        if layer_id == layers[-1]:
            return feats
    return feats


def calculate_nce_loss(model, mlps, src, tgt, nce_layers, *, batch_size, num_patches=256, nce_T=0.07,
                       lambda_NCE=1.0, patch_ids=None):
    """CUTModel.calculate_NCE_loss(src, tgt) with netG's `model` and netF's MLPs."""
    n_layers = len(nce_layers)
    feat_q = encode_only(model, tgt, nce_layers)
    feat_k = encode_only(model, src, nce_layers)
    feat_k_pool, sample_ids = patch_sample_f(mlps, feat_k, num_patches, patch_ids)
    feat_q_pool, _ = patch_sample_f(mlps, feat_q, num_patches, sample_ids)
    criterion = [PatchNCELoss(batch_size, nce_T) for _ in nce_layers]
    total_nce_loss = 0.0
    for f_q, f_k, crit, nce_layer in zip(feat_q_pool, feat_k_pool, criterion, nce_layers):
        loss = crit(f_q, f_k) * lambda_NCE
        total_nce_loss += loss.mean()
    return total_nce_loss / n_layers
