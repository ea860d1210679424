"""Code-size metrics for a source tree: the largest files, the longest functions, and duplicated places.

    python bench/code_metrics.py src --top 5

Prints three sections: the `--top` largest .py files by line count, the `--top` longest functions or
methods (end_lineno - lineno + 1, as file:qualname), and the summary of the `duplicates` command (pairs
of places sharing six or more lines) when it is on PATH.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
from pathlib import Path


def file_line_counts(root: Path) -> list[tuple[int, Path]]:
    """Line count of every .py file below root, largest first."""
    counts = [(len(path.read_text().splitlines()), path) for path in root.rglob("*.py")]
    return sorted(counts, key=lambda item: (-item[0], str(item[1])))


def function_lengths(root: Path) -> list[tuple[int, str]]:
    """Length in lines of every function and method below root as (lines, 'file:qualname'), longest first."""
    lengths: list[tuple[int, str]] = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        lengths.extend(_functions_in(tree.body, path.relative_to(root), prefix=""))
    return sorted(lengths, key=lambda item: (-item[0], item[1]))


def _functions_in(body: list[ast.stmt], path: Path, prefix: str) -> list[tuple[int, str]]:
    """Walk class and function bodies, naming each function by its dotted qualname."""
    found: list[tuple[int, str]] = []
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            qualname = f"{prefix}{node.name}"
            found.append((node.end_lineno - node.lineno + 1, f"{path}:{qualname}"))
            found.extend(_functions_in(node.body, path, prefix=f"{qualname}.<locals>."))
        elif isinstance(node, ast.ClassDef):
            found.extend(_functions_in(node.body, path, prefix=f"{prefix}{node.name}."))
    return found


def duplicates_summary(root: Path, most: int) -> str:
    """Output of `duplicates --repo root`, or a note when the command is not installed."""
    command = shutil.which("duplicates")
    if command is None:
        return "(duplicates is not on PATH)"
    result = subprocess.run(
        [command, "--repo", str(root), "--most", str(most), "--seconds", "120"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.rstrip()


def main() -> None:
    """Print the three metrics for the tree given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, nargs="?", default=Path("src"))
    parser.add_argument("--top", type=int, default=5, help="how many files and functions to list")
    parser.add_argument("--most", type=int, default=8, help="how many duplicate pairs to list")
    args = parser.parse_args()
    root: Path = args.root

    print(f"## {args.top} largest files under {root}")
    for lines, path in file_line_counts(root)[: args.top]:
        print(f"{lines:6d}  {path.relative_to(root)}")
    print(f"\n## {args.top} longest functions under {root}")
    for lines, name in function_lengths(root)[: args.top]:
        print(f"{lines:6d}  {name}")
    print(f"\n## duplicates --repo {root}")
    print(duplicates_summary(root, args.most))


if __name__ == "__main__":
    main()
