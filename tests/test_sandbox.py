"""The sandbox contains runaway, greedy, nosy and chatty scripts, and reports what happened."""

from __future__ import annotations

import json
import socket
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from medalist.sandbox import network_namespace_available, run_code, scrub_env


def _live_processes_with(token: str) -> list[int]:
    """PIDs of running (not zombie) processes whose command line contains `token`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if token.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def _wait_gone(token: str, seconds: float = 3.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (alive := _live_processes_with(token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def test_normal_script_runs_in_workdir_and_output_is_captured(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        Path("out.txt").write_text("written")
        print("hello from the sandbox", sys.argv[1:])
        print("a warning", file=sys.stderr)
        import medalist  # the package is importable inside the sandbox
        """
    )
    res = run_code(code, tmp_path, timeout=30, memory_mb=1024, args=["--fold", 3])
    assert res.ok, res.describe()
    assert res.returncode == 0
    assert "hello from the sandbox ['--fold', '3']" in res.stdout
    assert "a warning" in res.stderr
    assert (tmp_path / "out.txt").read_text() == "written"
    assert not (res.timed_out or res.killed or res.memory_exceeded)
    assert res.max_rss_mb is not None and res.max_rss_mb > 1


def test_script_given_as_path_and_failure_reported(tmp_path: Path) -> None:
    script = tmp_path / "fail.py"
    script.write_text("import sys\nprint('before')\nraise ValueError('bad column x')\n")
    res = run_code(script, tmp_path, timeout=30, memory_mb=1024)
    assert res.returncode == 1 and not res.ok
    assert "ValueError: bad column x" in res.stderr
    assert not res.memory_exceeded and not res.timed_out
    report = res.describe()
    assert report.startswith("exit code 1") and "bad column x" in report


def test_infinite_loop_times_out_and_whole_group_dies(tmp_path: Path) -> None:
    token = f"medalist-test-{uuid.uuid4().hex}"
    code = textwrap.dedent(
        f"""
        import subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "{token}"])
        print("spawned", flush=True)
        while True:
            pass
        """
    )
    start = time.monotonic()
    res = run_code(code, tmp_path, timeout=2.0, memory_mb=1024)
    assert res.timed_out and res.killed and not res.ok
    assert 1.9 <= res.seconds < 8 and time.monotonic() - start < 10
    assert "spawned" in res.stdout
    assert _wait_gone(token) == [], "the grandchild survived the timeout"
    assert res.describe().startswith("timed out")


def test_escaped_background_process_is_killed_after_normal_exit(tmp_path: Path) -> None:
    token = f"medalist-test-{uuid.uuid4().hex}"
    code = textwrap.dedent(
        f"""
        import subprocess, sys
        # a new session escapes the process group; the run's marker still finds it
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "{token}"],
                         start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print("left a daemon behind")
        """
    )
    res = run_code(code, tmp_path, timeout=30, memory_mb=1024)
    assert res.returncode == 0 and not res.timed_out
    assert _wait_gone(token) == [], "a setsid() escapee survived the run"


@pytest.mark.parametrize(
    "code",
    [
        "buf = bytearray(4 * 1024**3)\nprint(len(buf))",
        "import numpy as np\na = np.ones(4 * 1024**3 // 8)\nprint(a.sum())",
    ],
    ids=["bytearray", "numpy"],
)
def test_allocation_over_the_memory_limit_is_contained(tmp_path: Path, code: str) -> None:
    # from a small fresh process: a forked child's peak RSS counts the pages it shared with its parent
    # before exec, and a test worker that loaded torch or a sentence model earlier is over 512 MB itself
    import subprocess
    import sys

    probe = (
        "import json, sys; from medalist.sandbox import run_code; "
        "r = run_code(sys.argv[1], sys.argv[2], timeout=60, memory_mb=512); "
        "print(json.dumps({'rc': r.returncode, 'ok': r.ok, 'mem': r.memory_exceeded, 'to': r.timed_out, "
        "'rss': r.max_rss_mb, 'why': r.describe()}))"
    )
    out = subprocess.run([sys.executable, "-c", probe, code, str(tmp_path)], capture_output=True, text=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["rc"] != 0 and not res["ok"]
    assert res["mem"], res["why"]
    assert not res["to"]
    assert res["rss"] is not None and res["rss"] < 512
    assert "out of memory" in res["why"]


def test_secrets_are_not_in_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {
        "OPENAI_API_KEY": "sk-test-secret",
        "MEDALIST_LLM_API_KEY": "sk-medalist",
        "KAGGLE_USERNAME": "someone",
        "KAGGLE_KEY": "kaggle-secret",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "GITHUB_TOKEN": "ghp_secret",
        "MY_DB_PASSWORD": "hunter2",
        "SERVICE_CREDENTIALS": "creds",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MEDALIST_HARMLESS_SETTING", "kept")
    code = "import os, json; print(json.dumps(dict(os.environ)))"
    res = run_code(code, tmp_path, timeout=30, memory_mb=1024, env_extra={"FOLD": "2"}, threads=2)
    assert res.ok, res.describe()
    env = json.loads(res.stdout)
    leaked = [name for name in secrets if name in env]
    assert leaked == []
    assert not any(value in res.stdout for value in secrets.values())
    assert env["MEDALIST_HARMLESS_SETTING"] == "kept"
    assert env["FOLD"] == "2" and env["OMP_NUM_THREADS"] == "2"
    assert "PATH" in env and "HOME" in env


def test_scrub_env_rules() -> None:
    env = {"PATH": "/bin", "OPENAI_API_KEY": "x", "HF_HOME": "/h", "auth_header": "x", "LANG": "C"}
    assert scrub_env(env) == {"PATH": "/bin", "LANG": "C"}


_NETWORK_PROBE = textwrap.dedent(
    """
    import socket
    from pathlib import Path
    mode = {mode!r}
    # Never let a broken sandbox send a packet: check the block is in place before trying.
    if mode == "namespace":
        interfaces = [l.split(":")[0].strip() for l in Path("/proc/net/dev").read_text().splitlines()[2:]]
        if interfaces != ["lo"]:
            raise SystemExit("UNCONTAINED interfaces=%s" % interfaces)
    elif socket.socket.connect.__name__ != "_connect":
        raise SystemExit("UNCONTAINED socket.connect is not guarded")
    try:
        socket.create_connection(("8.8.8.8", 53), timeout=3).close()
        print("CONNECTED")
    except OSError as exc:
        print("BLOCKED", type(exc).__name__, exc)
    """
)


@pytest.mark.parametrize("mode", ["namespace", "sitecustomize"])
def test_network_is_blocked(tmp_path: Path, mode: str) -> None:
    if mode == "namespace" and not network_namespace_available():
        pytest.skip("unshare -rn does not work here")
    res = run_code(_NETWORK_PROBE.format(mode=mode), tmp_path, timeout=30, memory_mb=1024, network=mode)
    assert res.network == mode
    assert "UNCONTAINED" not in res.stderr, res.stderr
    assert res.ok, res.describe()
    assert res.stdout.startswith("BLOCKED"), res.stdout


def test_auto_network_mode_blocks(tmp_path: Path) -> None:
    res = run_code("print('hi')", tmp_path, timeout=30, memory_mb=1024)
    assert res.network == ("namespace" if network_namespace_available() else "sitecustomize")


def test_sitecustomize_mode_still_allows_loopback(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        code = (
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5).close()\nprint('ok')"
        )
        res = run_code(code, tmp_path, timeout=30, memory_mb=1024, network="sitecustomize")
    assert res.ok and res.stdout.strip() == "ok", res.describe()


def test_huge_output_is_truncated_keeping_head_and_tail(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        print("FIRST LINE")
        for i in range(200000):
            print(f"line {i} " + "x" * 40)
        print("LAST LINE")
        sys.stderr.write("E" * 3_000_000 + "\\nEND OF STDERR\\n")
        """
    )
    res = run_code(code, tmp_path, timeout=60, memory_mb=1024, output_limit=5000)
    assert res.ok
    assert res.stdout_truncated and res.stderr_truncated
    assert len(res.stdout) < 5200 and len(res.stderr) < 5200
    assert res.stdout.startswith("FIRST LINE") and res.stdout.rstrip().endswith("LAST LINE")
    assert "bytes cut]" in res.stdout
    assert res.stderr.rstrip().endswith("END OF STDERR")


def test_bad_workdir_and_network_mode_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        run_code("print(1)", tmp_path / "missing", timeout=5, memory_mb=256)
    with pytest.raises(ValueError, match="network must be"):
        run_code("print(1)", tmp_path, timeout=5, memory_mb=256, network="sometimes")


def test_limits_are_set_inside_the_sandbox(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import resource
        print(resource.getrlimit(resource.RLIMIT_AS), resource.getrlimit(resource.RLIMIT_CORE))
        """
    )
    res = run_code(code, tmp_path, timeout=30, memory_mb=700)
    assert res.ok, res.describe()
    assert res.stdout.strip() == f"({700 * 1024 * 1024}, {700 * 1024 * 1024}) (0, 0)"
