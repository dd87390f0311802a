"""Instances built on the public minimax API, one concept per module or package:

- `problems.toy`: the paper's toy problems with exact robust losses;
- `problems.data`: CIFAR-10 (download, safe extraction, readers), synthetic CIFAR-format
  archives, scikit-learn's digits, augmentation, and `DATASETS`, the registry of data sets;
- `problems.models`: image classifiers and `MODELS`, their registry;
- `problems.threats`: the perturbation set of an attack by name (`minimax.extend.threat_set`
  on [0, 1]);
- `problems.training`: the adversarial-training loop in phases, its config, checkpoints and the
  rule registry `RULES`;
- `problems.evaluation`: robust accuracy by `minimax.evaluate` under the attacks and suites of
  `minimax.extend.ATTACKS` / `minimax.extend.SUITES`, with calibration and the RobustBench record;
- `problems.resumable`: that evaluation chunk by chunk, resumable from its progress file;
- `problems.model_files`: reading a model file safely (checkpoints, state dicts, trusted
  TorchScript);
- `problems.report`: plots and an HTML page over training runs and their evaluations;
- `problems.comparison`: runs side by side (``minimax compare``'s report.html) and its tables;
- `problems.figures`: figure conventions (a style per run, titles that fit, integer ticks);
- `problems.extras`: the optional ``[demo]`` dependencies and the message naming them;
- `problems.worstgroup`: models and the gradient-boosted-trees baseline for the worst-group data
  sets (Adult, German credit, MNIST-1D: `problems.data.worstgroup.WORSTGROUP_DATASETS`);
- `problems.demo`: the offline demo, one module per part;
- `problems.cli`: the ``minimax`` command line, one module per command;
- `problems.files`: the atomic writer behind every file these write.
"""
