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

    `norm` stays a plain BatchNorm1d called on a tensor, so DDP's SyncBatchNorm conversion keeps working.
    """
    if lengths is None:
        return norm(h)  # (B, C, T)
    if not norm.training:  # running statistics: the same affine map at every step
        return mask_padding(norm(h), lengths)  # (B, C, T)
    mask = step_mask(lengths.to(h.device), h.shape[-1])  # (B, T)
    steps = h.transpose(1, 2)  # (B, T, C)
    # Boolean indexing reads the mask's count back to the host (a sync on a GPU), once per call.
    normed = norm(steps[mask])  # (N valid steps, C): batch norm over the valid steps alone
    out = normed.new_zeros(steps.shape).masked_scatter(mask[..., None], normed)  # (B, T, C)
    return out.transpose(1, 2)  # (B, C, T)
