"""The exported graph: the data's preprocessing, the trained network and a softmax, in one `nn.Module` whose inputs
are what a plain reader gives (image pixels 0..255, raw series and their lengths) and whose output is probabilities."""

from typing import Any

import torch
from torch import nn

from src.models.masking import masked_mean, step_mask
from src.models.rnn import RNNClassifier


class ImageInputs(nn.Module):
    """Pixels (B, C, H, W) as Pillow decodes them (0..255, float32) -> the network's inputs, exactly as the data
    module's `read_input` and `transform` compute them: on the data's stored scale (whole levels when it is over 1),
    scaled to [0, 1], normalised."""

    def __init__(self, max_value: float, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.max_value = float(max_value)
        self.register_buffer("mean", mean.float().reshape(1, -1, 1, 1))  # (1, C or 1, 1, 1)
        self.register_buffer("std", std.float().reshape(1, -1, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels * (self.max_value / 255)  # (B, C, H, W) on the stored scale
        if self.max_value > 1:
            x = torch.round(x)
        return (x / self.max_value - self.mean) / self.std


class SeriesInputs(nn.Module):
    """Series (B, T, D) zero-padded, missing values already filled, with lengths (B,) -> normalised as the data module
    normalises: "series" (each series and dimension over its own valid steps), "dataset" (the training split's mean
    and std) or "none"; padded steps come out zero."""

    def __init__(self, normalise: str, mean: Any = None, std: Any = None) -> None:
        super().__init__()
        self.normalise = normalise
        if normalise == "dataset":
            std = torch.as_tensor(std, dtype=torch.float32)
            self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, 1, -1))  # (1, 1, D)
            self.register_buffer("std", torch.where(std > 1e-8, std, torch.ones_like(std)).reshape(1, 1, -1))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = step_mask(lengths, x.shape[1])[..., None].to(x.dtype)  # (B, T, 1)
        if self.normalise == "none":
            return x * mask
        if self.normalise == "dataset":
            return (x - self.mean) / self.std * mask
        count = lengths.to(x.dtype).clamp(min=1)[:, None, None]  # (B, 1, 1)
        mean = (x * mask).sum(1, keepdim=True) / count  # (B, 1, D)
        std = torch.sqrt((((x - mean) * mask) ** 2).sum(1, keepdim=True) / count)  # (B, 1, D), as numpy's std
        std = torch.where(std > 1e-8, std, torch.ones_like(std))  # a constant dimension is centred, not blown up
        return (x - mean) / std * mask


def _single_layer(rnn: nn.RNNBase, layer: int, reverse: bool) -> nn.RNNBase:
    """One direction of one layer of `rnn` as a one-layer, one-direction RNN of the same kind, sharing its weights."""
    suffix = f"_l{layer}{'_reverse' if reverse else ''}"
    weight_ih = getattr(rnn, f"weight_ih{suffix}")
    cell = type(rnn)(weight_ih.shape[1], rnn.hidden_size, batch_first=True, bias=rnn.bias)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        if hasattr(rnn, name + suffix):
            setattr(cell, f"{name}_l0", getattr(rnn, name + suffix))
    return cell


class PaddedRNN(nn.Module):
    """An `RNNClassifier` computing the same logits without `pack_padded_sequence`, which neither ONNX nor
    `torch.export` takes: each direction of each layer runs over the padded batch (the backward direction over each
    series reversed within its own length), the last state is read at each series' own last step, and the mean
    pool covers the valid steps only. Eval mode only (no dropout between layers)."""

    def __init__(self, net: RNNClassifier) -> None:
        super().__init__()
        rnn = net.rnn
        self.images, self.chunk, self.pool = net.images, net.chunk, net.pool
        self.directions = net.num_directions
        self.layers = nn.ModuleList(
            nn.ModuleList(_single_layer(rnn, layer, reverse) for reverse in (False, True)[: self.directions])
            for layer in range(rnn.num_layers)
        )
        self.classifier = net.classifier

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.images:
            b, c, h, w = x.shape
            x = x.permute(0, 2, 1, 3).reshape(b, h, c * w)  # (B, T=H, C*W)
        if self.chunk > 1:  # as RNNClassifier: k steps read as one, the padding inside the last chunk zeroed
            b, t, d = x.shape
            x = x * step_mask(lengths, t)[..., None].to(x.dtype)
            lengths = torch.div(lengths + self.chunk - 1, self.chunk, rounding_mode="floor")
            x = nn.functional.pad(x, (0, 0, 0, -t % self.chunk)).reshape(b, -1, self.chunk * d)
        steps = torch.arange(x.shape[1], device=x.device)[None, :]  # (1, T)
        last = (lengths - 1).clamp(min=0)[:, None]  # (B, 1)
        # Each series reversed within its length, padding left in place: (B, T) indices, their own inverse.
        reverse = torch.where(steps < lengths[:, None], last - steps, steps)
        h, finals = x, []
        for directions in self.layers:
            outputs, finals = [], []
            for d, cell in enumerate(directions):
                if d == 0:
                    out, _ = cell(h)  # (B, T, hidden): valid until each series' length
                    finals.append(_at_steps(out, last)[:, 0])  # (B, hidden): the state after the last valid step
                else:
                    out, _ = cell(_at_steps(h, reverse))
                    out = _at_steps(out, reverse)  # back in time order
                    finals.append(out[:, 0])  # the backward state after reading the whole series
                outputs.append(out)
            h = torch.cat(outputs, dim=2)  # (B, T, dirs * hidden)
        # (B, dirs * hidden): the mean output over the valid steps, or each direction's last state
        features = masked_mean(h.transpose(1, 2), lengths) if self.pool == "mean" else torch.cat(finals, dim=1)
        return self.classifier(features)  # (B, num_classes)


def _at_steps(h: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """h (B, T, F) at time steps index (B, S) -> (B, S, F)."""
    return h.gather(1, index[..., None].expand(-1, -1, h.shape[2]))


class ExportedModel(nn.Module):
    """Preprocessing, network and softmax: (pixels) or (series, lengths) in, probabilities (B, num_classes) out.

    `flip_tta`: the mean of the logits of each image and its mirror image, as the module evaluates it."""

    def __init__(self, inputs: nn.Module, net: nn.Module, net_takes_lengths: bool, flip_tta: bool = False) -> None:
        super().__init__()
        self.inputs, self.net = inputs, net
        self.net_takes_lengths, self.flip_tta = net_takes_lengths, flip_tta
        self.series = isinstance(inputs, SeriesInputs)

    def _logits(self, x: torch.Tensor, *extras: torch.Tensor) -> torch.Tensor:
        logits = self.net(x, *extras)
        if self.flip_tta:
            logits = (logits + self.net(x.flip(3), *extras)) / 2
        return logits

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if self.series:
            x = self.inputs(x, lengths)  # (B, T, D)
            extras = (lengths,) if self.net_takes_lengths else ()
        else:
            x, extras = self.inputs(x), ()  # (B, C, H, W)
        return self._logits(x, *extras).softmax(dim=1)  # (B, num_classes)
