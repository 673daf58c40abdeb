"""Export a trained run to one file that runs without this repository (ONNX, or a `torch.export` program), with its
preprocessing inside, verified against the checkpoint on the test split (`python export.py`, docs/export.md).

This module imports no torch: export.py checks `format=` against FORMATS before torch loads."""

FORMATS = {"onnx": ".onnx", "torch_export": ".pt2"}  # format= -> the exported file's suffix
