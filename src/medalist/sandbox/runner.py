"""Run untrusted (generated) Python code in a contained subprocess.

Containment, in layers:
- its own session and process group, killed whole on timeout; afterwards any process still carrying the
  run's marker in its environment (one that escaped with setsid) is killed too;
- resource limits set in the child before exec: address space (memory), file size, core dumps, processes;
- an environment scrubbed of secrets (API keys, tokens, cloud and Kaggle credentials);
- no network: a fresh network namespace (`unshare -rn`) where the platform allows it, otherwise a
  `sitecustomize` that makes socket connections to non-loopback addresses raise;
- stdout/stderr captured in a bounded buffer (head and tail kept) for the model to read.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import medalist

MB = 1024 * 1024
SANDBOX_MARK = "MEDALIST_SANDBOX_ID"

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION", re.IGNORECASE)
_SECRET_PREFIXES = (
    "KAGGLE_",
    "OPENAI_",
    "AWS_",
    "MEDALIST_LLM_",
    "ANTHROPIC_",
    "AZURE_",
    "GOOGLE_",
    "GCP_",
    "HF_",
    "HUGGING",
    "GITHUB_",
    "GH_",
    "GITLAB_",
    "NETRC",
)
_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "BLIS_NUM_THREADS",
)
_MEMORY_PATTERNS = re.compile(
    r"MemoryError|std::bad_alloc|Cannot allocate memory|Unable to allocate|out of memory|"
    r"failed to allocate|mmap failed",
    re.IGNORECASE,
)

# Loaded by the child's interpreter when no network namespace is available.
_NETBLOCK_SITECUSTOMIZE = '''\
"""medalist sandbox: refuse network connections to anything but loopback."""
import ipaddress as _ip
import socket as _socket


def _medalist_allowed(address):
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX paths and the like
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return _ip.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a name would need DNS: refuse


def _medalist_guard(address):
    if not _medalist_allowed(address):
        raise PermissionError(f"network access is disabled in the medalist sandbox (tried {address!r})")


_orig_connect = _socket.socket.connect
_orig_connect_ex = _socket.socket.connect_ex
_orig_sendto = _socket.socket.sendto


def _connect(self, address):
    _medalist_guard(address)
    return _orig_connect(self, address)


def _connect_ex(self, address):
    _medalist_guard(address)
    return _orig_connect_ex(self, address)


def _sendto(self, data, *args):
    _medalist_guard(args[-1])
    return _orig_sendto(self, data, *args)


def _getaddrinfo(host, *args, **kwargs):
    _medalist_guard((host if isinstance(host, str) else (host or b"").decode(), 0))
    return _orig_getaddrinfo(host, *args, **kwargs)


_orig_getaddrinfo = _socket.getaddrinfo
_socket.socket.connect = _connect
_socket.socket.connect_ex = _connect_ex
_socket.socket.sendto = _sendto
_socket.getaddrinfo = _getaddrinfo
'''


@dataclass(frozen=True)
class SandboxResult:
    """What a sandboxed run did. stdout/stderr are truncated (head and tail kept) to the run's limit."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool
    memory_exceeded: bool
    killed: bool
    network: str  # "namespace" (unshare -rn), "sitecustomize" (loopback only) or "open"
    max_rss_mb: float | None = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.killed

    def describe(self, max_chars: int = 4000) -> str:
        """A compact report for a model or a person: status line, then the ends of stderr and stdout."""
        if self.timed_out:
            status = f"timed out after {self.seconds:.1f} s and was killed"
        elif self.memory_exceeded:
            status = f"ran out of memory (exit code {self.returncode})"
        elif self.returncode < 0:
            status = f"killed by signal {-self.returncode}"
        else:
            status = f"exit code {self.returncode}"
        parts = [f"{status}; {self.seconds:.1f} s"]
        if self.max_rss_mb is not None:
            parts[0] += f"; peak memory {self.max_rss_mb:.0f} MB"
        half = max_chars // 2
        if self.stderr.strip():
            parts.append("stderr:\n" + _tail(self.stderr, half if self.stdout.strip() else max_chars))
        if self.stdout.strip():
            parts.append("stdout:\n" + _tail(self.stdout, half if self.stderr.strip() else max_chars))
        return "\n".join(parts)


def scrub_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of `env` without anything that looks like a secret (keys, tokens, cloud/Kaggle/LLM settings)."""
    return {
        name: value
        for name, value in env.items()
        if not _SECRET_NAME.search(name) and not name.upper().startswith(_SECRET_PREFIXES)
    }


@functools.cache
def network_namespace_available() -> bool:
    """True when `unshare -rn` can start a process in a fresh, empty network namespace here."""
    exe = shutil.which("unshare")
    if exe is None or not sys.platform.startswith("linux"):
        return False
    try:
        done = subprocess.run([exe, "-rn", "true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def run_code(
    code: str | Path,
    workdir: Path,
    *,
    timeout: float,
    memory_mb: int,
    args: Sequence[str] = (),
    env_extra: Mapping[str, str] | None = None,
    python: str = sys.executable,
    output_limit: int = 20_000,
    threads: int = 1,
    network: str = "auto",
    max_file_mb: int = 8192,
    max_processes: int = 4096,
) -> SandboxResult:
    """Run `code` (source text, or a path to a script) with `python` in `workdir`, contained.

    `memory_mb` caps the address space (RLIMIT_AS) of the script and its children; `timeout` is wall
    clock, after which the whole process group is killed. `env_extra` is added after scrubbing (the
    caller vouches for it). `threads` sets OMP/BLAS thread counts. `network`: "auto" (a network namespace
    where `unshare -rn` works, else the loopback-only sitecustomize), "namespace", "sitecustomize" or "open".
    """
    if network not in ("auto", "namespace", "sitecustomize", "open"):
        raise ValueError(f"network must be auto, namespace, sitecustomize or open, not {network!r}")
    if network == "namespace" and not network_namespace_available():
        raise RuntimeError("no network namespace here: `unshare -rn` does not work on this platform")
    workdir = Path(workdir).resolve()
    if not workdir.is_dir():
        raise FileNotFoundError(f"sandbox workdir does not exist: {workdir}")
    token = uuid.uuid4().hex
    with tempfile.TemporaryDirectory(prefix="medalist-sandbox-") as tmp:
        tmpdir = Path(tmp)
        if isinstance(code, Path):
            script = code.resolve()
        else:
            script = tmpdir / "script.py"
            script.write_text(code, encoding="utf-8")
        if network == "auto":
            network = "namespace" if network_namespace_available() else "sitecustomize"
        env = _child_env(tmpdir, token, threads, network == "sitecustomize", env_extra)
        cmd = [python, str(script), *map(str, args)]
        if network == "namespace":
            cmd = [shutil.which("unshare") or "unshare", "-rn", "--", *cmd]
        limits = _Limits(memory_mb * MB, max_file_mb * MB, max_processes)
        return _run(cmd, workdir, env, timeout, limits, output_limit, network, token)


@dataclass(frozen=True)
class _Limits:
    address_space: int
    file_size: int
    processes: int

    def apply(self) -> None:  # runs in the child between fork and exec
        _set_limit(resource.RLIMIT_AS, self.address_space)
        _set_limit(resource.RLIMIT_FSIZE, self.file_size)
        _set_limit(resource.RLIMIT_CORE, 0)
        _set_limit(resource.RLIMIT_NPROC, self.processes)


def _set_limit(which: int, value: int) -> None:
    """Soft and hard limit both, so the script cannot raise it again (lowering is always allowed)."""
    hard = resource.getrlimit(which)[1]
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


def _child_env(
    tmpdir: Path, token: str, threads: int, netblock: bool, env_extra: Mapping[str, str] | None
) -> dict[str, str]:
    env = scrub_env(os.environ)
    paths = [str(Path(medalist.__file__).resolve().parents[1])]  # so the script can import medalist
    if netblock:
        (tmpdir / "sitecustomize.py").write_text(_NETBLOCK_SITECUSTOMIZE, encoding="utf-8")
        paths.insert(0, str(tmpdir))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    for name in _THREAD_VARS:
        env[name] = str(max(1, threads))
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "MPLBACKEND": "Agg",
            "TOKENIZERS_PARALLELISM": "false",
            SANDBOX_MARK: token,
        }
    )
    if env_extra:
        env.update({str(k): str(v) for k, v in env_extra.items()})
    return env


class _Capture:
    """Reads a pipe to the end, keeping the first and last `limit // 2` bytes."""

    def __init__(self, stream, limit: int) -> None:
        self.head = bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_len = 0
        self.total = 0
        self.head_limit = limit * 2 // 5
        self.tail_limit = limit - self.head_limit
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        with stream:
            while chunk := stream.read1(65536):
                self.total += len(chunk)
                room = self.head_limit - len(self.head)
                if room > 0:
                    self.head += chunk[:room]
                    chunk = chunk[room:]
                if chunk:
                    self.tail.append(chunk)
                    self.tail_len += len(chunk)
                    while self.tail_len - len(self.tail[0]) >= self.tail_limit:
                        self.tail_len -= len(self.tail.popleft())

    def text(self) -> tuple[str, bool]:
        self.thread.join(timeout=5)
        tail = b"".join(self.tail)[-self.tail_limit :]
        cut = self.total - len(self.head) - len(tail)
        head_s = self.head.decode("utf-8", errors="replace")
        tail_s = tail.decode("utf-8", errors="replace")
        if cut <= 0:
            return head_s + tail_s, False
        return f"{head_s}\n... [{cut} bytes cut] ...\n{tail_s}", True


def _run(
    cmd: list[str],
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    limits: _Limits,
    output_limit: int,
    network: str,
    token: str,
) -> SandboxResult:
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=limits.apply,  # only setrlimit calls between fork and exec
        close_fds=True,
    )
    out = _Capture(proc.stdout, output_limit)
    err = _Capture(proc.stderr, output_limit)
    deadline = start + timeout
    timed_out = False
    status, rusage = _wait(proc.pid, deadline)
    if status is None:
        timed_out = True
        _kill_group(proc.pid, signal.SIGTERM)
        status, rusage = _wait(proc.pid, time.monotonic() + 1.0)
        if status is None:
            _kill_group(proc.pid, signal.SIGKILL)
            status, rusage = _wait(proc.pid, None)
    seconds = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    # Whatever the script left behind (background children, setsid escapees) dies with the run.
    _kill_group(proc.pid, signal.SIGKILL)
    _kill_marked(token)
    stdout, stdout_cut = out.text()
    stderr, stderr_cut = err.text()
    returncode = proc.returncode
    killed = timed_out or returncode < 0
    memory_exceeded = not timed_out and (
        (returncode != 0 and bool(_MEMORY_PATTERNS.search(stderr[-5000:])))
        or returncode == -signal.SIGKILL  # the kernel's OOM killer
    )
    max_rss = rusage.ru_maxrss / 1024 if rusage is not None else None
    return SandboxResult(
        returncode=returncode,
        stdout=stdout,
        stderr=stderr,
        seconds=seconds,
        timed_out=timed_out,
        memory_exceeded=memory_exceeded,
        killed=killed,
        network=network,
        max_rss_mb=max_rss,
        stdout_truncated=stdout_cut,
        stderr_truncated=stderr_cut,
    )


def _wait(pid: int, deadline: float | None) -> tuple[int | None, resource.struct_rusage | None]:
    """Reap `pid` (with its resource usage) before `deadline`; (None, None) when it is still running."""
    pause = 0.002
    while True:
        try:
            done, status, rusage = os.wait4(pid, os.WNOHANG)
        except ChildProcessError:
            return 0, None
        if done == pid:
            return status, rusage
        if deadline is not None and time.monotonic() >= deadline:
            return None, None
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _kill_marked(token: str) -> None:
    """SIGKILL every process whose environment carries this run's marker (Linux /proc only)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return
    needle = f"{SANDBOX_MARK}={token}".encode()
    me = os.getpid()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else "..." + text[-limit:]
