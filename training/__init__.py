"""swapcam offline training: extraction, facesets, augmentation, losses, the training loop."""
