"""LightningDataModules: each exposes `num_classes`, `dims` and real train/val/test splits."""
