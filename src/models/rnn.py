"""A recurrent classifier that reads an image row by row (sequential-MNIST style)."""

import torch
from torch import nn

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class RowRNN(nn.Module):
    """LSTM or GRU over the rows of an image; the last hidden state feeds a linear classifier.

    Each of the H rows is one time step whose features are the row's C * W pixels.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        cell: str = "lstm",
        hidden_size: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"Unknown RNN cell {cell!r}; valid choices: {sorted(CELLS)}")
        self.rnn = CELLS[cell](
            input_size=in_channels * image_size,
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        rows = x.permute(0, 2, 1, 3).reshape(b, h, c * w)  # (B, T=H, C*W)
        if rows.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # oneDNN's bfloat16 LSTM/GRU needs AVX-512 and fails on other CPUs: the recurrence runs in float32 there.
            with torch.autocast("cpu", enabled=False):
                _, state = self.rnn(rows.float())
        else:
            _, state = self.rnn(rows)
        h_n = state[0] if isinstance(state, tuple) else state  # (layers * dirs, B, hidden)
        last = h_n[-self.num_directions :].transpose(0, 1).reshape(b, -1)  # (B, dirs * hidden)
        return self.classifier(self.dropout(last))  # (B, num_classes)
