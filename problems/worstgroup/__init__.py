"""Worst-group instances on real data: the models for the tabular sets (Adult, German credit)
and MNIST-1D, their registry, the group-balanced gradient-boosted-trees baseline, and the
comparison of the outer rules against the field's baselines.

- `problems.worstgroup.models`: ``LogisticModel``, ``MLP``, ``CNN1d`` and `WORSTGROUP_MODELS`;
- `problems.worstgroup.trees`: `fit_group_balanced_trees`, the tree baseline;
- `problems.worstgroup.train`: `train_rule`, one rule's run with its measurements;
- `problems.worstgroup.compare`: `compare`, every rule over seeds, tuned on validation;
- `problems.worstgroup.hypotheses`: the comparison's hypotheses and their decision functions;
- `problems.worstgroup.figures`, `problems.worstgroup.publish`: its figures and doc blocks;
- ``python -m minimax_problems.worstgroup``: the command that runs it;
- the data: `problems.data.worstgroup` (`WORSTGROUP_DATASETS`, ``load_worstgroup``).
"""
