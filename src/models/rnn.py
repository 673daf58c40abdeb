"""A recurrent classifier: an LSTM or GRU over a sequence, or over an image read row by row (sequential-MNIST style)."""

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from src.models.masking import masked_mean, step_mask

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
POOLS = ("last", "mean")


class RNNClassifier(nn.Module):
    """LSTM or GRU whose last hidden state (`pool="last"`) or mean output over the valid steps (`pool="mean"`: every
    step feeds the classifier, which helps on long series) feeds a linear classifier. `max_steps=n` reads series of a
    fixed length T > n in chunks of ceil(T / n) steps: 150 steps become 30 of 5 values, a far shorter recurrence.

    `input_shape` is one input's shape, from the data config: (T, D) sequences, each step D features (T may be
    None: any length), or (C, H, W) images read row by row, each of the H rows one step of C * W features. Padded
    sequences come with their lengths (B,), which keep the padding out of the recurrence.
    """

    def __init__(
        self,
        input_shape: Sequence[int | None],
        num_classes: int,
        cell: str = "lstm",
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        pool: str = "last",
        max_steps: int | None = None,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"Unknown RNN cell {cell!r}; valid choices: {sorted(CELLS)}")
        if pool not in POOLS:
            raise ValueError(f"model.net.pool={pool!r} is not valid; valid choices: {list(POOLS)}")
        if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
            raise ValueError(f"model.net.max_steps={max_steps!r} is not valid: use a whole number of steps, or null")
        self.pool = pool
        length = None if len(input_shape) == 3 else input_shape[0]  # a series' fixed length, or None (any)
        self.chunk = -(-length // max_steps) if max_steps and length else 1  # steps read as one: ceil(T / max_steps)
        if len(input_shape) not in (2, 3) or input_shape[-1] is None:
            raise ValueError(
                f"RNNClassifier reads (T, D) sequences or (C, H, W) images; data.input_shape is {list(input_shape)}"
            )
        self.images = len(input_shape) == 3
        input_size = input_shape[0] * input_shape[2] if self.images else input_shape[1]  # features per step
        input_size *= self.chunk
        self.rnn = CELLS[cell](
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            # torch applies this between stacked layers only; it warns when there is one layer.
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.num_directions = 2 if bidirectional else 1
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size * self.num_directions, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if self.images:
            b, c, h, w = x.shape
            x = x.permute(0, 2, 1, 3).reshape(b, h, c * w)  # (B, T=H, C*W)
        if self.chunk > 1:  # k steps read as one: (B, T, D) -> (B, ceil(T / k), k * D), the last chunk zero-padded
            b, t, d = x.shape
            if lengths is not None:  # the padding inside a series' last chunk reads as zeros, as when it is alone
                x = x * step_mask(lengths.to(x.device), t)[..., None]
                lengths = torch.div(lengths + self.chunk - 1, self.chunk, rounding_mode="floor")
            x = nn.functional.pad(x, (0, 0, 0, -t % self.chunk)).reshape(b, -1, self.chunk * d)
        steps: torch.Tensor | nn.utils.rnn.PackedSequence = x  # (B, T, D)
        if lengths is not None:  # packed: each sequence's last state is at its own length, not at the padding's end
            steps = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # oneDNN's bfloat16 LSTM/GRU needs AVX-512 and fails on other CPUs: the recurrence runs in float32 there.
            with torch.autocast("cpu", enabled=False):
                outputs, state = self.rnn(steps.float())
        else:
            outputs, state = self.rnn(steps)
        if self.pool == "mean":
            if lengths is not None:  # packed -> (B, T, dirs * hidden), zero past each length
                outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=x.shape[1])
            features = masked_mean(outputs.transpose(1, 2), lengths)  # (B, dirs * hidden)
        else:
            h_n = state[0] if isinstance(state, tuple) else state  # (layers * dirs, B, hidden)
            features = h_n[-self.num_directions :].transpose(0, 1).reshape(x.shape[0], -1)  # (B, dirs * hidden)
        return self.classifier(self.dropout(features))  # (B, num_classes)
