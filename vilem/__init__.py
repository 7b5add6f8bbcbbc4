"""vilem: train and benchmark dual-encoder image-text and video-text retrieval models."""

__version__ = "0.1.0"
