"""Instances built on the public minimax API: toy problems, CIFAR-10, the digits demo."""
