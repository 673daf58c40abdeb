"""Batched image augmentation on whatever device the batch is on (one kernel, not B)."""

import torch
import torch.nn.functional as F


def random_crop(x: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad each side by `padding`, then crop every image at its own random offset."""
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))  # (B, C, H + 2p, W + 2p)
    top = torch.randint(0, 2 * padding + 1, (b, 1), device=x.device)
    left = torch.randint(0, 2 * padding + 1, (b, 1), device=x.device)
    rows = top + torch.arange(h, device=x.device)  # (B, H)
    cols = left + torch.arange(w, device=x.device)  # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]  # (B, C, H, W)


def random_flip(x: torch.Tensor) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < 0.5
    return torch.where(flip, x.flip(3), x)
