"""CPU transcriptions of one iteration of the released trainers, run on the transcribed memories of
tests/memories/reference_memories.py (their updates happen inside `loss.backward()`, in autograd's order), and of
PCLHD's set-up helpers for the "all" clusters:

- `pgm_iteration`: PGM (zesenwu23/USL-VI-ReID) clustercontrast/trainers.py:74-105 (`ClusterContrastTrainer.train`:
  loss_ir, loss_rgb, the alternating cross-modal term, loss = loss_ir + loss_rgb + 0.25 * cross_loss, backward);
- `pclmp_iteration`: PCLHD (shijiangming1/PCLHD) clustercontrast/trainers.py:150-185 (`ClusterContrastTrainer_PCLMP`
  pass 1, with the EMA teacher's features given, or without the EMA part);
- `pclmp_all_iteration`: the same trainer's pass 2, trainers.py:197-208 (loss2 = memory_all(ir) + memory_all(rgb));
- `generate_modal_invariant_cluster_features`: PCLHD train_sysu.py:858-888;
- `bimodal_flags`: PCLHD train_sysu.py:352-380 (`associated_analysis_for_all`) and the "all" loaders' filter,
  train_sysu.py:969-981.
The encoder, the optimiser step and the data loaders are left out: features and labels are given.
"""
from __future__ import annotations

import collections

import torch

import reference_memories  # tests/memories (on pytest's pythonpath): the transcribed memories

RefClusterMemory = reference_memories.RefClusterMemory
RefPCLHDMemory = reference_memories.RefPCLHDMemory


def cross_term(memory_ir, memory_rgb, f_out_rgb, labels_rgb, f_out_ir, labels_ir, epoch, r2i, i2r, alternate):
    """trainers.py's `if r2i:` block: the cross-modal loss (0 without a matching)."""
    if r2i:
        rgb2ir_labels = torch.tensor([r2i[key.item()] for key in labels_rgb])
        ir2rgb_labels = torch.tensor([i2r[key.item()] for key in labels_ir])
        if alternate:
            if epoch % 2 == 1:
                cross_loss = 1 * memory_rgb(f_out_ir, ir2rgb_labels.long())
            else:
                cross_loss = 1 * memory_ir(f_out_rgb, rgb2ir_labels.long())
        else:
            cross_loss = memory_rgb(f_out_ir, ir2rgb_labels.long()) + memory_ir(f_out_rgb, rgb2ir_labels.long())
    else:
        cross_loss = torch.tensor(0.0)
    return cross_loss


def pgm_iteration(memory_ir, memory_rgb, f_out_rgb, labels_rgb, f_out_ir, labels_ir, epoch, r2i, i2r,
                  alternate=True):
    """One iteration of PGM's stage-2 trainer up to `loss.backward()`; returns the loss terms."""
    loss_ir = memory_ir(f_out_ir, labels_ir)
    loss_rgb = memory_rgb(f_out_rgb, labels_rgb)
    cross_loss = cross_term(memory_ir, memory_rgb, f_out_rgb, labels_rgb, f_out_ir, labels_ir, epoch, r2i, i2r,
                            alternate)
    loss = loss_ir + loss_rgb + 0.25 * cross_loss  # total loss
    loss.backward()
    return {"ir": loss_ir.detach(), "rgb": loss_rgb.detach(), "cross": cross_loss.detach()}


def pclmp_iteration(memory_ir, memory_rgb, f_out_rgb, labels_rgb, f_out_ir, labels_ir, epoch, r2i, i2r,
                    f_out_rgb_ema=None, f_out_ir_ema=None, alternate=True):
    """PCLHD pass 1 up to `loss.backward()`: as PGM's, plus, with the teacher's features (computed under
    torch.no_grad() in the reference), loss_ema = the instance memories' losses of those features."""
    loss_ir = memory_ir(f_out_ir, labels_ir)
    loss_rgb = memory_rgb(f_out_rgb, labels_rgb)
    cross_loss = cross_term(memory_ir, memory_rgb, f_out_rgb, labels_rgb, f_out_ir, labels_ir, epoch, r2i, i2r,
                            alternate)
    terms = {"ir": loss_ir, "rgb": loss_rgb, "cross": cross_loss}
    loss = loss_ir + loss_rgb + 0.25 * cross_loss
    if f_out_rgb_ema is not None:
        with torch.no_grad():
            f_out_rgb_ema, f_out_ir_ema = f_out_rgb_ema.detach(), f_out_ir_ema.detach()
        loss_ir_ema = memory_ir(f_out_ir_ema, labels_ir, model_name='encoder_ema')
        loss_rgb_ema = memory_rgb(f_out_rgb_ema, labels_rgb, model_name='encoder_ema')
        terms["ema"] = loss_ir_ema + loss_rgb_ema
        loss = loss + terms["ema"]
    loss.backward()
    return {name: term.detach() for name, term in terms.items()}


def pclmp_all_iteration(memory_all, f_out_all_rgb, labels_all_rgb, f_out_all_ir, labels_all_ir):
    """PCLHD pass 2 up to `loss2.backward()`; returns loss2."""
    loss_all_ir = memory_all(f_out_all_ir, labels_all_ir)
    loss_all_rgb = memory_all(f_out_all_rgb, labels_all_rgb)
    loss2 = loss_all_ir + loss_all_rgb
    loss2.backward()
    return loss2.detach()


def generate_modal_invariant_cluster_features(labels, num_cluster_all, features, file):
    """[C, D]: per "all" cluster the mean of its visible members' mean and its infrared members' mean (the one
    there is when it holds one modality); `file`: (fname, _, cid) records whose names say the modality."""
    centers_IR = collections.defaultdict(list)
    centers_RBG = collections.defaultdict(list)
    centers_IR_mean = collections.defaultdict(list)
    centers_RBG_mean = collections.defaultdict(list)
    for i, (label, (fname, _, cid)) in enumerate(zip(labels, file)):
        if label == -1:
            continue
        if 'rgb_modify' in fname:
            centers_RBG[labels[i]].append(features[i])
        elif 'ir_modify' in fname:
            centers_IR[labels[i]].append(features[i])
        else:
            raise AssertionError
    for i in range(num_cluster_all):
        if centers_RBG[i] != []:
            centers_RBG_mean[i] = torch.stack(centers_RBG[i], dim=0).mean(0)
        if centers_IR[i] != []:
            centers_IR_mean[i] = torch.stack(centers_IR[i], dim=0).mean(0)
    centers_all = []
    for i in range(num_cluster_all):
        if centers_RBG_mean[i] == []:
            centers_all.append(centers_IR_mean[i])
        elif centers_IR_mean[i] == []:
            centers_all.append(centers_RBG_mean[i])
        else:
            centers_all.append(torch.mean(torch.stack([centers_RBG_mean[i], centers_IR_mean[i]], dim=0), dim=0))
    return torch.stack(centers_all, dim=0)


def bimodal_flags(pseudo_labels_all, file):
    """The images the "all" loaders draw (train_sysu.py:969-981): (ir rows, rgb rows) whose cluster holds both
    modalities, by `associated_analysis_for_all`'s flags."""
    all_pred = [label for (fname, _, cid), label in zip(file, pseudo_labels_all) if label != -1]
    names = [fname for (fname, _, cid), label in zip(file, pseudo_labels_all) if label != -1]
    all_label_set = sorted(set(all_pred))
    flag_ir_list = collections.defaultdict(list)
    flag_rgb_list = collections.defaultdict(list)
    for idx_, lab_ in enumerate(all_label_set):
        for idx, lab in enumerate(all_pred):
            if lab_ == lab:
                if 'ir_modify' in names[idx]:
                    flag_ir_list[idx_] = 1
                elif 'rgb_modify' in names[idx]:
                    flag_rgb_list[idx_] = 1
    all_ir, all_rgb = [], []
    for i, ((fname, _, cid), label) in enumerate(zip(file, pseudo_labels_all)):
        if 'ir_modify' in fname and flag_ir_list[label] == 1 and flag_rgb_list[label] == 1:
            all_ir.append(i)
        elif 'rgb_modify' in fname and flag_ir_list[label] == 1 and flag_rgb_list[label] == 1:
            all_rgb.append(i)
    return all_ir, all_rgb
