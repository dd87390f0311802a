"""Worst-group instances on real data: the models for the tabular sets (Adult, German credit)
and MNIST-1D, their registry, and the group-balanced gradient-boosted-trees baseline.

- `problems.worstgroup.models`: ``LogisticModel``, ``MLP``, ``CNN1d`` and `WORSTGROUP_MODELS`;
- `problems.worstgroup.trees`: `fit_group_balanced_trees`, the tree baseline;
- the data: `problems.data.worstgroup` (`WORSTGROUP_DATASETS`, ``load_worstgroup``).
"""
