"""Plain `nn.Module` networks: images (B, C, H, W) or padded sequences (B, T, D) with their lengths in, logits
(B, num_classes) out."""
