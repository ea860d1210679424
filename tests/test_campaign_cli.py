"""`medalist campaign` over a pool of real competitions (setup only, the expert): the curriculum's first
pick is the structurally simplest, memory holds every task afterwards, and a second call resumes (runs
nothing again)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from medalist.cli import app
from medalist.memory.store import MemoryStore


def test_campaign_runs_a_pool_in_curriculum_order_and_resumes(competitions, tmp_path):
    pool = tmp_path / "pool"
    pool.mkdir()
    for slug in ("titanic", "spaceship-titanic"):
        (pool / slug).symlink_to(competitions / slug, target_is_directory=True)
    store = tmp_path / "campaign-memory.sqlite"
    args = ["campaign", str(pool), "--workdir", str(tmp_path / "w"), "--setup-only", "--memory", str(store)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (tmp_path / "w" / "campaign.jsonl").read_text().splitlines()]
    done = [r for r in rows if r["event"] == "done"]
    # titanic's public files are fewer, smaller and narrower than spaceship-titanic's: the simplest goes first
    assert [r["task"] for r in done] == ["titanic", "spaceship-titanic"]
    assert all(r["ok"] and r["pass1"] == 1.0 and r["tokens"] == 0 for r in done)
    assert {t.task_key for t in MemoryStore(store).tasks()} == {"titanic", "spaceship-titanic"}
    assert "titanic" in res.output and "campaign over 2 competitions" in res.output
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    rows_after = (tmp_path / "w" / "campaign.jsonl").read_text().splitlines()
    assert len(rows_after) == len(rows)  # nothing ran again


def test_campaign_refuses_an_unknown_order(tmp_path):
    (tmp_path / "pool" / "a").mkdir(parents=True)
    res = CliRunner().invoke(app, ["campaign", str(tmp_path / "pool"), "--order", "alphabetical"])
    assert res.exit_code != 0 and "--order must be one of" in str(
        res.exception
    )  # main() prints it in one line
