"""Plain `nn.Module` networks: image batches (B, C, H, W) in, logits (B, num_classes) out."""
