"""swapcam live path: numpy + OpenCV + onnxruntime only (torch is never imported here)."""

__version__ = "0.1.0"
