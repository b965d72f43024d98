"""Bi-encoder training (InfoNCE with softmax-sampled negatives), evaluation, ablation and shipping."""
