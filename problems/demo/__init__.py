"""``minimax demo``: the paper's three findings, reproduced on a CPU in a few minutes.

1. The counterexample φ(x) = x₁² + (|x₂| + 1)² (`problems.toy.Counterexample`): the single-gradient
   rule (Danskin) against DDi from x = (1, 0), with normalized steps; and the value of φ after one
   step along each rule's direction, from the directions the library returns
   (`problems.demo.counterexample`).
2. The 2-2-1 ELU network (`problems.toy.ELUNetwork`): the exact robust loss during training, how
   often two candidate gradients conflict (negative inner product), and line scans of the exact
   robust loss along each candidate's negative gradient and along DDi's direction
   (`problems.demo.elu`).
3. scikit-learn's 8×8 digits: adversarial training of a small CNN by Danskin (PGD-AT), MaxLoss and
   DDi through `problems.training.train`, with a smooth activation and no BatchNorm, and with
   ReLU + BatchNorm (`problems.demo.digits`).

Everything lands in one folder (default ``demo-report/``): PNG figures, ``report.html``,
``summary.json`` and the training runs under ``runs/`` (`problems.demo.run`). Every sentence of
the report is generated from the numbers of the run (`problems.demo.findings`,
`problems.demo.tables`). Under one ``--seed`` two runs give the same ``summary.json`` except for
the wall-clock fields (`TIME_KEYS`; `strip_times` removes them). The command-line options live in
`problems.cli.demo`.

Public API::

    run_demo(out, *, quick=False, seed=0, eps=0.1, progress=True, threads=1) -> dict  (summary)
    findings(summary) -> dict[str, list[str]]  the report's sentences, from the summary alone
    summary_tables(summary) -> [(heading, header, rows)]  the summary tables (stdout, report)
    format_table(header, rows) -> str          a plain-text table
    strip_times(obj) -> obj                    the summary without wall-clock fields
"""

from problems.demo.common import TIME_KEYS, DemoSettings, strip_times
from problems.demo.findings import findings
from problems.demo.run import PARTS, run_demo, write_report
from problems.demo.tables import format_table, summary_tables

__all__ = [
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
