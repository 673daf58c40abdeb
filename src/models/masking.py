"""Padding-aware pieces for sequence networks: batches of series zero-padded to T_max, with their lengths (B,).

`lengths=None` means every step is valid (an unpadded batch, or `net(x)` with no lengths).
"""

import torch
from torch import nn


def step_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, T) bool: True at each series' valid steps, False at its padding."""
    positions = torch.arange(steps, device=lengths.device)  # (T,)
    return positions < lengths[:, None]  # (B, T)


def mask_padding(h: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """h (B, C, T) with each series' padded steps set to zero, so that a convolution near a series' end reads zeros
    there exactly as it reads its own 'same' padding when the series is alone."""
    if lengths is None:
        return h
    mask = step_mask(lengths.to(h.device), h.shape[-1])  # (B, T)
    return h * mask[:, None, :]  # (B, C, T)


def masked_mean(h: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Global average pooling over time of h (B, C, T) -> (B, C), each series averaged over its valid steps only."""
    if lengths is None:
        return h.mean(dim=-1)  # (B, C)
    lengths = lengths.to(h.device)
    summed = mask_padding(h, lengths).sum(dim=-1)  # (B, C)
    return summed / lengths.clamp(min=1)[:, None].to(h.dtype)  # (B, C)


def masked_batch_norm(norm: nn.BatchNorm1d, h: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """`norm` over h (B, C, T), padded steps zero in the result; in training its statistics (and running ones)
    come from the valid steps only, so the amount of padding in a batch never moves them.

    The statistics are masked sums, not a gather of the valid steps: nothing is read back to the host (a boolean
    index would wait for the GPU at every layer of every step). A SyncBatchNorm (DDP's `sync_batchnorm`) gathers
    the valid steps and syncs them across ranks itself.
    """
    if lengths is None:
        return norm(h)  # (B, C, T)
    if not norm.training and norm.track_running_stats:  # running statistics: one affine map at every step
        return mask_padding(norm(h), lengths)  # (B, C, T)
    mask = step_mask(lengths.to(h.device), h.shape[-1])  # (B, T)
    if isinstance(norm, nn.SyncBatchNorm):
        steps = h.transpose(1, 2)  # (B, T, C)
        normed = norm(steps[mask])  # (N valid steps, C)
        return normed.new_zeros(steps.shape).masked_scatter(mask[..., None], normed).transpose(1, 2)  # (B, C, T)
    weights = mask[:, None, :].to(h.dtype)  # (B, 1, T)
    count = weights.sum()  # valid steps in the batch
    mean = (h * weights).sum((0, 2)) / count  # (C,)
    var = ((h - mean[:, None]) ** 2 * weights).sum((0, 2)) / count  # (C,) biased, as batch norm normalises
    if norm.training and norm.track_running_stats:
        with torch.no_grad():
            norm.num_batches_tracked.add_(1)
            momentum = norm.momentum if norm.momentum is not None else 1.0 / norm.num_batches_tracked.item()
            unbiased = var * count / (count - 1).clamp(min=1)
            norm.running_mean.lerp_(mean.to(norm.running_mean.dtype), momentum)
            norm.running_var.lerp_(unbiased.to(norm.running_var.dtype), momentum)
    out = (h - mean[:, None]) * torch.rsqrt(var[:, None] + norm.eps)  # (B, C, T)
    if norm.affine:
        out = out * norm.weight[:, None] + norm.bias[:, None]
    return out * weights  # (B, C, T), padding zero
