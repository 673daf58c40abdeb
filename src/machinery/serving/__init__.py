"""Serving in-memory splits to the Trainer: seeded loaders that resume mid-epoch, batches sliced from tensors
kept on the device, and batched augmentation on whatever device the batch is on."""
