"""Data: CIFAR-10 (download, safe extraction, readers), synthetic CIFAR-format archives,
scikit-learn's digits, augmentation, and `problems.data.datasets.DATASETS`, the registry of
data sets by name."""
