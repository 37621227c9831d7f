"""Images as points (the paper's Section 6.1, Figure 4 right): the training images whose fc7
vectors (our layer "relu7") lie nearest a test image's are of its kind, though not near it in
pixel space. `extract_features` computes the vectors, `nearest_neighbours` retrieves in any space.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..checkpoint import eval_transform
from ..data import as_loader
from ..hooks import activations, eval_mode

__all__ = ["extract_features", "nearest_neighbours", "retrieval_precision"]


@torch.no_grad()
def extract_features(model: nn.Module, data: Dataset | DataLoader | torch.Tensor
                     | tuple[torch.Tensor, torch.Tensor], layer: str = "relu7",
                     transform: nn.Module | dict | None = None, batch_size: int = 64,
                     device: str | torch.device | None = None,
                     progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(features N x D, labels N) of `layer`, flattened, for every image of `data` (a Dataset or
    DataLoader of (uint8 image, label), an (images, labels) pair or images alone: labels -1), on
    the CPU, in eval mode, without a graph. `transform` (a BatchTransform or a checkpoint dict)
    makes the model's input from uint8 images; without it they must be normalized floats."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if isinstance(transform, dict):
        transform = eval_transform(transform)
    if transform is not None:
        transform = transform.to(device)
    feats, labels = [], []
    with eval_mode(model):
        for images, targets in tqdm(as_loader(data, batch_size, device), desc=f"{layer} features",
                                    leave=False, disable=not progress):
            x = images.to(device)
            if transform is not None:
                x = transform(x)
            elif x.dtype == torch.uint8:
                raise ValueError("got uint8 images but no transform: pass transform=checkpoint "
                                 "(or a BatchTransform) so they are resized and normalized")
            feats.append(activations(model, x, layer)[layer].flatten(1).cpu())
            labels.append(torch.as_tensor(targets).long().cpu())
    if not feats:
        raise ValueError("extract_features got an empty data set")
    return torch.cat(feats), torch.cat(labels)


def nearest_neighbours(queries: torch.Tensor, gallery: torch.Tensor, k: int = 5,
                      metric: str = "euclidean",
                      exclude_self: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances, indices), each (Q, k): the k gallery rows (flattened: images give pixel-space
    neighbours) nearest each query row, by "euclidean" (the paper's) or "cosine" (1 - cosine
    similarity) distance. `exclude_self` skips index i for query i (queries = gallery)."""
    q = queries.flatten(1).double()
    g = gallery.flatten(1).double()
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} dimensions, the gallery {g.shape[1]}")
    if metric == "euclidean":
        d = torch.cdist(q, g)
    elif metric == "cosine":
        d = 1 - F.normalize(q, dim=1) @ F.normalize(g, dim=1).T
    else:
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    if exclude_self:
        if len(q) != len(g):
            raise ValueError("exclude_self needs queries and gallery to be the same rows")
        d.fill_diagonal_(float("inf"))
    available = len(g) - (1 if exclude_self else 0)
    if not 1 <= k <= available:
        raise ValueError(f"k must be between 1 and {available} (the gallery size), got {k}")
    dist, idx = d.topk(k, dim=1, largest=False, sorted=True)
    return dist.float(), idx


def retrieval_precision(features: torch.Tensor, labels: torch.Tensor, k: int = 5,
                        metric: str = "euclidean") -> float:
    r"""Leave-one-out precision@k: the fraction of each image's k nearest *other* images
    that share its class, averaged, $\frac{1}{Nk}\sum_i \#\{j \in NN_k(i): y_j = y_i\}$."""
    _, idx = nearest_neighbours(features, features, k=k, metric=metric, exclude_self=True)
    labels = torch.as_tensor(labels)
    return (labels[idx] == labels[:, None]).float().mean().item()
