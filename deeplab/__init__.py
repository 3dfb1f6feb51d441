"""Frame-by-frame DeepLab (ResNet-v1-101): symbol, training, test, demo."""
