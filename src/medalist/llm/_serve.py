"""Child process of LocalServer: run xllamacpp's llama.cpp server until stdin closes or SIGTERM.

Prints `LISTENING http://127.0.0.1:PORT` on stdout once the model is loaded.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medalist.llm._serve")
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--alias", default="")
    args = parser.parse_args(argv)

    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.n_ctx = args.ctx
    params.n_parallel = 1  # one slot: the whole context for one conversation
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.warmup = False
    params.sampling.seed = 0
    if args.alias:
        params.model_alias = {args.alias}

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())

    def watch_stdin() -> None:  # the parent closed our stdin or died
        sys.stdin.buffer.read()
        done.set()

    server = xllamacpp.Server(params)
    print(f"LISTENING {server.listening_address}", flush=True)
    threading.Thread(target=watch_stdin, daemon=True).start()
    while not done.wait(0.5):
        pass
    del server  # llama.cpp's destructor stops the HTTP server and frees the model
    return 0


if __name__ == "__main__":
    sys.exit(main())
