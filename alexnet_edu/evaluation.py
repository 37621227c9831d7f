"""Evaluation: loss and top-1/top-5 accuracy of a model on a dataset, with the paper's test-time
averaging over ten crops (Section 4.1), and class probabilities for new images."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import eval_transform
from .data import as_loader
from .device import amp_dtype, autocast
from .metrics import average_crops, topk_accuracy
from .model import eval_mode
from .validation import check_tta

__all__ = ["evaluate", "predict"]


@torch.no_grad()
def evaluate(model: nn.Module, data, transform: nn.Module | dict,
             device: str | torch.device | None = None, tta: bool | str = False,
             batch_size: int = 256, amp: str = "auto", progress: bool = False) -> dict:
    """Loss, top-1, top-5 (None below 5 classes), n, predictions, targets, probabilities of
    `model` on `data` (a Dataset of (uint8 image, label), a DataLoader or a pair of tensors);
    `transform`: a BatchTransform, or a checkpoint. `tta`: True averages the softmax over the
    paper's ten crops (Section 4.1), "flip" over the centre crop and its mirror."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    transform = (eval_transform(transform) if isinstance(transform, dict) else transform).to(device)
    check_tta(tta, transform)
    dtype = amp_dtype(amp, device)
    all_logp, all_targets = [], []
    with eval_mode(model):
        for images, targets in tqdm(as_loader(data, batch_size, device), desc="evaluate",
                                    leave=False, disable=not progress):
            with autocast(device, dtype):
                all_logp.append(_log_probabilities(model, transform, images.to(device), tta).cpu())
            all_targets.append(torch.as_tensor(targets).long().cpu())
    if not all_targets:
        raise ValueError("evaluate got an empty data set")
    logp, targets = torch.cat(all_logp), torch.cat(all_targets)
    accuracy = topk_accuracy(logp, targets, [1] + ([5] if logp.shape[1] >= 5 else []))
    return {"loss": F.nll_loss(logp, targets).item(), "top1": accuracy[1],
            "top5": accuracy.get(5), "n": len(targets), "predictions": logp.argmax(1),
            "targets": targets, "probabilities": logp.exp()}


def _log_probabilities(model: nn.Module, transform: nn.Module, images: torch.Tensor,
                       tta: bool | str) -> torch.Tensor:
    """Log-softmax of one batch: of the centre crop, or of the softmax averaged over crops
    (Section 4.1: "averaging the predictions made by the network's softmax layer")."""
    if tta is True:
        crops = transform.ten_crop_batch(images)
    else:   # the centre crop, and with "flip" its mirror image too
        centre = transform(images)
        if not tta:
            return model(centre).float().log_softmax(-1)
        crops = torch.stack([centre, centre.flip(-1)], dim=1)
    return average_crops(model, crops).float().clamp_min(1e-12).log()


def predict(model: nn.Module, images, transform: nn.Module | dict,
            device: str | torch.device | None = None, tta: bool = False) -> torch.Tensor:
    """Class probabilities (N x classes) of uint8 images (C x H x W, N x C x H x W) or a Dataset."""
    if torch.is_tensor(images):
        images = images[None] if images.dim() == 3 else images
        images = (images, torch.zeros(len(images), dtype=torch.long))
    return evaluate(model, images, transform, device, tta=tta)["probabilities"]
