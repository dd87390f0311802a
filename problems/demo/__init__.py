"""``minimax demo``: the paper's findings, reproduced on a CPU in a few minutes, every comparison
over several seeds with 95% intervals and paired t-tests.

Parts (`PARTS`; a plain run runs `DEFAULT_PARTS`, ``--part NAME`` any of them):

- ``counterexample``: φ(x) = x₁² + (|x₂| + 1)² (`problems.toy.Counterexample`): the single-gradient
  rule (Danskin) against DDi from x = (1, 0), with normalized steps; and the value of φ after one
  step along each rule's direction, from the directions the library returns
  (`problems.demo.counterexample`; exact, one run).
- ``worstclass``: worst-class training on the digits (`problems.demo.worstgroup` →
  `problems.worstclass`): ERM, Danskin, DDi with the certified step and online Group DRO.
- ``digits``: scikit-learn's 8×8 digits, adversarial training of a small CNN (CELU, no
  BatchNorm) by Danskin (PGD-AT), MaxLoss, DDi, per-example DDi and DDi with the certified step
  through `problems.training.train` (`problems.demo.digits`, figures in
  `problems.demo.digits_figures`), with each certified step's certified and realised decrease.
- ``digits-bn`` (on request): the same with ReLU + BatchNorm, per-example DDi left out.
- ``elu`` (on request): the paper's 2-2-1 ELU network in the paper's own setting
  (`problems.demo.conflict`): the exact robust loss during training, and how often candidate
  gradients conflict; `problems.demo.conflict` says why it is not in the default run.

Everything lands in one folder (default ``demo-report/``): PNG figures, ``report.html``,
``summary.json`` and the training runs under ``runs/`` (`problems.demo.run`). Every sentence of
the report is generated from the numbers of the run (`problems.demo.findings`,
`problems.demo.verdicts`, `problems.demo.tables`, and `problems.demo.headline` for the
README's few sentences); `problems.demo.publish` writes the README's and docs' blocks from a
committed summary. Under one ``--seed`` two runs give the same
``summary.json`` except for the wall-clock fields (`TIME_KEYS`; `strip_times` removes them;
`problems.demo.compare` prints the differences). The command-line options live in
`problems.cli.demo`.

Public API::

    PARTS, DEFAULT_PARTS                       every part; those a plain run runs
    run_demo(out, *, quick=False, seed=0, eps=0.1, progress=True, threads=1,
             parts=DEFAULT_PARTS, seeds=None) -> dict  (summary)
    findings(summary) -> dict[str, list[str]]  the report's sentences, from the summary alone
    summary_tables(summary) -> [(heading, header, rows)]  the summary tables (stdout, report)
    format_table(header, rows) -> str          a plain-text table
    strip_times(obj) -> obj                    the summary without wall-clock fields
"""

from .common import TIME_KEYS, DemoSettings, strip_times
from .findings import findings
from .run import DEFAULT_PARTS, PARTS, run_demo, write_report
from .tables import format_table, summary_tables

__all__ = [
    "DEFAULT_PARTS",
    "PARTS",
    "TIME_KEYS",
    "DemoSettings",
    "findings",
    "format_table",
    "run_demo",
    "strip_times",
    "summary_tables",
    "write_report",
]
