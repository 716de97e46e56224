"""SACL: supervised Semantics-Augmented Contrastive Learning (spec c.2, c.3), device-agnostic.

Conventions: features are B×C×h×w (C = 128), labels B×h×w at 1/4 resolution with ``num_classes`` (= 9) meaning
"unlabelled". Pixels of a batch are flattened in (b, y, x) order, as the original does.

Randomness: the original shuffles every class's pixels with ``torch.randperm`` on the CPU default generator, in
this order per forward pass: local queries A, local queries B, local keys A, local keys B, then the global term's
queue keys A, B (classes ascending within each). The functions here draw in the same order (optionally from an
explicit CPU ``generator``), so with the same seed the same pixels are chosen.

Degenerate batches: the original crashes (TypeError) when a date's batch label holds a single distinct value; here
such a date contributes the pixels of that value when it is a labelled class, and nothing when it is unlabelled.
A date with no labelled pixel at all is skipped by the global term (the original divides by zero).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "enqueue_keys",
    "global_similarity_loss",
    "local_infonce_loss",
    "region_queries_hard",
    "region_queries_mean",
    "sample_class_pixels",
    "sample_confident_keys",
]


def _flatten_pixels(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """B×C×h×w features and B×h×w labels → (C×(B·h·w) columns, (B·h·w) int64 labels), (b, y, x) order."""
    if features.ndim != 4:
        raise ValueError(f"features must be B×C×h×w, got {tuple(features.shape)}")
    batch, channels = features.shape[:2]
    if labels.numel() != batch * features.shape[2] * features.shape[3]:
        raise ValueError(
            f"labels {tuple(labels.shape)} do not match features {tuple(features.shape)} (expected B×h×w labels)"
        )
    columns = features.reshape(batch, channels, -1).permute(1, 0, 2).reshape(channels, -1)
    return columns, labels.reshape(-1).long()


def _present_classes(labels: torch.Tensor, num_classes: int) -> list[int]:
    """Sorted distinct labelled classes (values < num_classes) of a flat label vector."""
    return [int(v) for v in torch.unique(labels).tolist() if 0 <= v < num_classes]


def sample_class_pixels(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    max_per_class: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per labelled class (ascending), its pixels in a random order, at most ``max_per_class`` of them.

    features B×C×h×w, labels B×h×w → (C×N pixel columns, N class values int64).
    """
    columns, flat = _flatten_pixels(features, labels)
    picked: list[torch.Tensor] = []
    values: list[torch.Tensor] = []
    for cls in _present_classes(flat, num_classes):
        index = torch.nonzero(flat == cls, as_tuple=False).squeeze(1)
        order = torch.randperm(index.numel(), generator=generator, device="cpu").to(
            index.device
        )  # CPU stream, as the original
        index = index[order][:max_per_class]
        picked.append(columns[:, index])
        values.append(torch.full((index.numel(),), cls, dtype=torch.long, device=flat.device))
    if not picked:
        return columns.new_zeros(columns.shape[0], 0), flat.new_zeros(0)
    return torch.cat(picked, dim=1), torch.cat(values)


@torch.no_grad()
def sample_confident_keys(
    features: torch.Tensor,
    logits: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    max_per_class: int,
    confidence: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Representative queue keys (``construct_key_topK``, option ``representive_sample_key``).

    For each class c (ascending) predicted correctly somewhere: the pixels with prediction == label == c and softmax
    confidence > ``confidence``, most confident first, at most ``max_per_class``. features B×C×h×w, logits
    B×K×h×w, labels B×h×w → (C×N, N). Where the original's bookkeeping breaks (no confident pixel at all) this
    returns no keys.
    """
    columns, flat = _flatten_pixels(features, labels)
    probs = torch.softmax(logits.detach(), dim=1)
    conf, pred = probs.max(dim=1)
    conf, pred = conf.reshape(-1), pred.reshape(-1)
    picked: list[torch.Tensor] = []
    values: list[torch.Tensor] = []
    for cls in _present_classes(pred[pred == flat], num_classes):
        index = torch.nonzero((pred == cls) & (flat == cls), as_tuple=False).squeeze(1)
        order = torch.sort(conf[index], descending=True, stable=True).indices
        index = index[order]
        index = index[conf[index] > confidence][:max_per_class]
        if index.numel():
            picked.append(columns[:, index])
            values.append(torch.full((index.numel(),), cls, dtype=torch.long, device=flat.device))
    if not picked:
        return columns.new_zeros(columns.shape[0], 0), flat.new_zeros(0)
    return torch.cat(picked, dim=1), torch.cat(values)


def local_infonce_loss(
    proj_A: torch.Tensor,
    proj_B: torch.Tensor,
    feat_A: torch.Tensor,
    feat_B: torch.Tensor,
    label_A: torch.Tensor,
    label_B: torch.Tensor,
    num_classes: int = 9,
    temperature: float = 0.1,
    weight: float = 0.1,
    sample_num: int = 1024,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Local SACL term (``local_contrast``), already multiplied by ``weight``; a 0-d tensor.

    Anchors: L2-normalised pixel-weighted mean of the projected query pixels of a class over both dates.
    Keys: L2-normalised decoder-feature pixels of both dates. For each positive key j of class c the InfoNCE
    logits are [a_c·k_j, a_c·k_m (all keys of other classes)] / τ; class term = mean over j.
    Result = weight · Σ_c term_c / U, U = number of distinct query classes.
    """
    queries_A, q_vals_A = sample_class_pixels(proj_A, label_A, num_classes, sample_num, generator)
    queries_B, q_vals_B = sample_class_pixels(proj_B, label_B, num_classes, sample_num, generator)
    queries = torch.cat([queries_A, queries_B], dim=1)
    query_vals = torch.cat([q_vals_A, q_vals_B])
    keys_A, k_vals_A = sample_class_pixels(feat_A, label_A, num_classes, sample_num, generator)
    keys_B, k_vals_B = sample_class_pixels(feat_B, label_B, num_classes, sample_num, generator)
    keys = torch.cat([F.normalize(keys_A, dim=0), F.normalize(keys_B, dim=0)], dim=1)
    key_vals = torch.cat([k_vals_A, k_vals_B])

    classes = torch.unique(query_vals).tolist()
    total = proj_A.new_zeros(())
    if not classes:
        return total
    for cls in classes:
        anchor = F.normalize(queries[:, query_vals == cls].mean(dim=1), dim=0)
        sims = anchor @ keys / temperature
        positives = sims[key_vals == cls]
        negatives = sims[key_vals != cls]
        # −log softmax([s_j, n_1..n_M])[0] for every positive j, without materialising the P×(1+M) matrix.
        neg_lse = torch.logsumexp(negatives, dim=0) if negatives.numel() else sims.new_tensor(float("-inf"))
        total = total + (torch.logaddexp(positives, neg_lse) - positives).mean()
    return total * weight / len(classes)


def region_queries_hard(
    proj: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, num_classes: int = 9
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hardness-weighted class queries (``construct_query_region_hard``), not normalised.

    proj B×C×h×w, logits B×K×h×w (1/4-resolution semantic logits, detached here), labels B×h×w →
    (n×C queries, n class values): q_c = Σ w·z / Σ w over the pixels of class c, w = 1 − softmax(logits)[c].
    """
    columns, flat = _flatten_pixels(proj, labels)
    probs = torch.softmax(logits.detach(), dim=1)
    probs = probs.reshape(probs.shape[0], probs.shape[1], -1).permute(1, 0, 2).reshape(probs.shape[1], -1)
    rows: list[torch.Tensor] = []
    classes = _present_classes(flat, num_classes)
    for cls in classes:
        mask = flat == cls
        weights = 1.0 - probs[cls, mask]
        rows.append((columns[:, mask] * weights.unsqueeze(0)).sum(dim=1) / weights.sum())
    return _stack_queries(rows, columns), torch.tensor(classes, dtype=torch.long, device=flat.device)


def region_queries_mean(
    proj: torch.Tensor, labels: torch.Tensor, num_classes: int = 9
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain class means of ``proj`` (``construct_region_query_mean``), not normalised: (n×C, n)."""
    columns, flat = _flatten_pixels(proj, labels)
    classes = _present_classes(flat, num_classes)
    rows = [columns[:, flat == cls].mean(dim=1) for cls in classes]
    return _stack_queries(rows, columns), torch.tensor(classes, dtype=torch.long, device=flat.device)


def _stack_queries(rows: list[torch.Tensor], columns: torch.Tensor) -> torch.Tensor:
    return torch.stack(rows) if rows else columns.new_zeros(0, columns.shape[0])


def _date_similarity(
    queries: torch.Tensor, vals: torch.Tensor, own: Sequence[torch.Tensor], other: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Σ_c ½[mean(1 − q_c·pos) + mean(1 + q_c·neg)] / (2n) for one date's normalised queries."""
    total = queries.new_zeros(1)
    if queries.shape[0] == 0:
        return total
    for row, cls in enumerate(vals.tolist()):
        query = queries[row]
        positives = torch.cat([own[cls], other[cls]], dim=1).detach()
        negatives = torch.cat(
            [torch.cat([own[k], other[k]], dim=1) for k in range(len(own)) if k != cls], dim=1
        ).detach()
        pos = query @ positives
        neg = query @ negatives
        total = total + ((1.0 - pos).mean() + (1.0 + neg).mean()) / 2.0
    return total / (2 * queries.shape[0])


def global_similarity_loss(
    queries_A: torch.Tensor,
    vals_A: torch.Tensor,
    queries_B: torch.Tensor,
    vals_B: torch.Tensor,
    queues_A: Sequence[torch.Tensor],
    queues_B: Sequence[torch.Tensor],
) -> torch.Tensor:
    """Global SACL term (``global_contrast``, no weight), shape [1].

    queries_* n×C (un-normalised; L2-normalised here), queues_* one C×Q tensor per class. Positives of a date-A query
    of class c: queue_A{c} and queue_B{c}; negatives: both queues of every other class (date B symmetric).
    """
    q_A = F.normalize(queries_A, dim=1)
    q_B = F.normalize(queries_B, dim=1)
    return _date_similarity(q_A, vals_A, queues_A, queues_B) + _date_similarity(q_B, vals_B, queues_B, queues_A)


@torch.no_grad()
def enqueue_keys(
    queues: Sequence[torch.Tensor],
    pointers: Sequence[torch.Tensor],
    keys: torch.Tensor,
    class_vals: torch.Tensor,
    enqueue_len: int = 64,
) -> None:
    """``_dequeue_and_enqueue`` in place: for each class with at least ``enqueue_len`` keys, write the first
    ``enqueue_len`` L2-normalised key columns (C×N ``keys``) at the class pointer, then advance it modulo the queue
    length. Classes with fewer keys are skipped.
    """
    if keys.ndim != 2 or keys.shape[1] != class_vals.numel():
        raise ValueError(f"keys must be C×N with N = len(class_vals), got {tuple(keys.shape)} and {class_vals.numel()}")
    normalised = F.normalize(keys.detach(), dim=0)
    for cls, (queue, pointer) in enumerate(zip(queues, pointers, strict=True)):
        mask = class_vals == cls
        if int(mask.sum()) < enqueue_len:
            continue
        queue_len = queue.shape[1]
        start = int(pointer[0])
        columns = (start + torch.arange(enqueue_len, device=queue.device)) % queue_len
        queue[:, columns] = normalised[:, mask][:, :enqueue_len].to(queue.dtype)
        pointer[0] = (start + enqueue_len) % queue_len
