"""Per model family of finished runs: experiments, seconds spent, best CV — read from each run's ledger.

python bench/models.py /tmp/bench/spooky-author-identification /tmp/bench-without/spooky-author-identification
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from medalist.metrics import Direction
from medalist.solve.ledger import Ledger


def family_rows(workspace: Path) -> list[tuple[str, int, float, float | None, int]]:
    """(model, experiments, seconds, best cv, failed) per model family, most seconds first."""
    task = json.loads((workspace / "task.json").read_text())
    order = Direction(bool(task["lower_is_better"]))
    stats: dict[str, list] = {}
    for r in Ledger(workspace / "experiments" / "ledger.sqlite").records(status=None):
        s = stats.setdefault(r.model, [0, 0.0, None, 0])
        s[0] += 1
        s[1] += float(r.seconds or 0.0)
        if r.status == "done" and r.cv_score is not None:
            best = s[2]
            s[2] = r.cv_score if best is None else order.best_of([best, r.cv_score], key=float)
        elif r.status == "failed":
            s[3] += 1
    rows = [(m, n, sec, best, failed) for m, (n, sec, best, failed) in stats.items()]
    return sorted(rows, key=lambda row: -row[2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspaces", type=Path, nargs="+")
    args = ap.parse_args()
    console = Console(width=max(Console().width, 120))
    for ws in args.workspaces:
        chosen = json.loads((ws / "chosen.json").read_text()) if (ws / "chosen.json").exists() else {}
        table = Table(title=f"{ws}  (chosen: {chosen.get('name', '-')})")
        for col in ("model", "experiments", "seconds", "best cv", "failed"):
            table.add_column(col, justify="left" if col == "model" else "right")
        for model, n, sec, best, failed in family_rows(ws):
            table.add_row(model, str(n), f"{sec:.0f}", "-" if best is None else f"{best:.5f}", str(failed))
        console.print(table)


if __name__ == "__main__":
    main()
