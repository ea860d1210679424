"""A SCRIPTED OpenAI-compatible chat server on loopback, for tests. It is not a model: it answers each
request with the next entry of a script (or a function of the request), records every request, and
reports the token usage the script says."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer. status != 200 sends an OpenAI-style error body instead."""

    text: str = ""
    status: int = 200
    prompt_tokens: int | None = None  # None: one token per word of the request's messages
    completion_tokens: int | None = None  # None: one token per word of `text`
    usage: bool = True  # False: omit the usage block, as some servers do
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] | None = None  # llama.cpp-style server timings
    finish_reason: str = "stop"  # "length": the answer was cut off at its cap


Script = Sequence[Reply | str] | Callable[[dict[str, Any]], Reply | str]


class ScriptedChatServer:
    """`with ScriptedChatServer(["hi", Reply(status=500), ...]) as srv:` then use `srv.base_url`."""

    def __init__(self, script: Script) -> None:
        self._script = script
        self._next = 0
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def __enter__(self) -> ScriptedChatServer:
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _reply_for(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            if callable(self._script):
                reply = self._script(body)
            elif self._next < len(self._script):
                reply = self._script[self._next]
                self._next += 1
            else:
                reply = Reply(status=500, text="scripted server: script exhausted")
        return Reply(text=reply) if isinstance(reply, str) else reply


def _make_handler(server: ScriptedChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            try:
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (a timeout test)
                pass

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/health", "/v1/health"):
                self._send(200, {"status": "ok"})
            elif self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
            else:
                self._send(404, {"error": {"message": "not found", "type": "not_found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            reply = server._reply_for(body)
            if reply.delay:
                time.sleep(reply.delay)
            if reply.status != 200:
                error = {"message": reply.text or f"scripted error {reply.status}", "type": "scripted"}
                self._send(reply.status, {"error": error}, reply.headers)
                return
            prompt_words = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
            prompt_tokens = reply.prompt_tokens if reply.prompt_tokens is not None else prompt_words
            completion_tokens = (
                reply.completion_tokens if reply.completion_tokens is not None else len(reply.text.split())
            )
            payload: dict[str, Any] = {
                "id": f"scripted-{len(server.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "scripted"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.text},
                        "finish_reason": reply.finish_reason,
                    }
                ],
            }
            if reply.usage:
                payload["usage"] = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                }
            if reply.timings is not None:
                payload["timings"] = reply.timings
            self._send(200, payload, reply.headers)

    return Handler
