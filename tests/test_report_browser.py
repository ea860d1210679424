"""report.html of short real runs, opened in headless Chromium: no console error, no request leaving the
file, every plot drawn, and a screenshot taken.

Chromium comes from the install command (.ci/run: ``apt-get install -y chromium``); where it is missing this
test fails under CI and is skipped elsewhere. Screenshots go to $MEDALIST_SCREENSHOTS when set.

The browser is driven over the DevTools protocol (``--remote-debugging-pipe``: JSON messages ending in NUL
on fds 3 and 4) with the standard library only."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from medalist.pipeline import run_competition
from medalist.report import write_report

pytestmark = [pytest.mark.slow, pytest.mark.shared]


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        msg = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.mark.parametrize("slug", ["titanic", "spooky-author-identification"])
def test_a_real_runs_report_renders_in_chromium(slug, chromium, competitions, tmp_path):
    result = run_competition(
        competitions / slug / "public", tmp_path / "runs", time_budget=40, raise_errors=True
    )
    assert result.submission is not None
    assert (result.workspace / "eda.json").is_file()  # the pipeline profiled the data after setup
    page = write_report(result.workspace, competitions / slug)
    shots = Path(os.environ.get("MEDALIST_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with Chromium(chromium) as browser:
        load = browser.open(page)
        assert load.errors == []
        leaving = [u for u in load.requests if not u.startswith(("file://", "data:", "blob:"))]
        assert leaving == []  # self-contained: nothing asked of the network
        declared = int(browser.evaluate("document.body.dataset.figures"))
        figures = browser.evaluate("document.querySelectorAll('div.figure').length")
        drawn = browser.evaluate(
            "[...document.querySelectorAll('div.figure')].filter(d => d.querySelector('svg.main-svg')).length"
        )
        assert declared == figures == drawn >= 8
        sections = browser.evaluate("[...document.querySelectorAll('section')].map(s => s.id)")
        assert {"task", "eda", "setup", "time", "experiments", "oof", "grade"} <= set(sections)
        shot = browser.screenshot(shots / f"report-{slug}.png")
    assert shot.stat().st_size > 50_000


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageLoad:
    """What happened while a page loaded."""

    errors: list[str] = field(default_factory=list)  # console.error/assert, uncaught exceptions, error logs
    requests: list[str] = field(default_factory=list)  # every URL the page asked for


class Chromium:
    """``with Chromium() as browser: load = browser.open(path)``; one tab, 1280 px wide."""

    def __init__(self, executable: str, width: int = 1280, height: int = 900) -> None:
        self.executable = executable
        self.width, self.height = width, height
        self._next_id = 0
        self._buffer = b""
        self._session: str | None = None
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        self._profile = tempfile.mkdtemp(prefix="medalist-chromium-")
        to_browser_r, self._to_browser = (_high(fd) for fd in os.pipe())
        self._from_browser, from_browser_w = (_high(fd) for fd in os.pipe())
        # the browser reads commands on fd 3 and writes replies on fd 4: a shell puts the pipes there
        redirect = (
            f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-'
        )
        self._proc = subprocess.Popen(
            [
                "bash",
                "-c",
                redirect,
                self.executable,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                f"--user-data-dir={self._profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(to_browser_r, from_browser_w),
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self._session = self.call(
            "Target.attachToTarget", {"targetId": target, "flatten": True}, session=False
        )["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
        )
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call("Browser.close", session=False, timeout=5)
        except Exception:
            self._proc.kill()
        self._proc.wait(timeout=20)
        os.close(self._to_browser)
        os.close(self._from_browser)
        shutil.rmtree(self._profile, ignore_errors=True)

    # ------------------------------------------------------------------ protocol
    def call(
        self, method: str, params: dict | None = None, *, session: bool = True, timeout: float = 60
    ) -> dict:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self._session:
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed its pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def _wait_event(self, method: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self._events):
            self._events.append(self._read(deadline))

    # ------------------------------------------------------------------ page
    def open(self, path: Path, settle: float = 60) -> PageLoad:
        """Load ``path`` and wait until its load event fired and the DOM stopped growing."""
        self._events.clear()
        self.call("Page.navigate", {"url": path.resolve().as_uri()})
        self._wait_event("Page.loadEventFired", settle)
        last, stable_since = -1, time.monotonic()
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            size = self.evaluate("document.getElementsByTagName('*').length")
            if size != last:
                last, stable_since = size, time.monotonic()
            elif time.monotonic() - stable_since > 1.0:
                break
            time.sleep(0.2)
        return self._page_load()

    def _page_load(self) -> PageLoad:
        load = PageLoad()
        for event in self._events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                load.errors.append(
                    " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", []))
                )
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                load.errors.append(
                    str(details.get("exception", {}).get("description") or details.get("text"))
                )
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                load.errors.append(str(params["entry"].get("text")))
            elif method == "Network.requestWillBeSent":
                load.requests.append(str(params.get("request", {}).get("url")))
        return load

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def screenshot(self, path: Path, max_height: int = 16000) -> Path:
        """A PNG of the whole page (up to ``max_height`` pixels tall)."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        clip = {"x": 0, "y": 0, "width": self.width, "height": min(height, max_height), "scale": 1}
        shot = self.call(
            "Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True}
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


def _high(fd: int) -> int:
    """``fd`` moved to a number of 10 or more, clear of the 3 and 4 the browser's pipes go to."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high
