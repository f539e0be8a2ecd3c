"""Run a packaged function the way Lambda does: its code archive in a fresh task directory, its layers in a
fresh /opt, the runtime interface client (awslambdaric) as Lambda's /var/runtime, under the real AWS Lambda
Runtime Interface Emulator, on the template's Python minor version started with -S (no site-packages:
nothing of this machine's or the development venv's packages can be imported)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LambdaUnderRie:
    def __init__(self, *, rie: Path, python: Path, runtime_client: Path, code: Path, layers: list[Path],
                 handler: str, root: Path, env: dict[str, str], timeout_s: int = 60, memory_mb: int = 512,
                 config: str = "pipelines.yaml"):
        self.root = root
        self.task = root / "task"
        self.opt = root / "opt"
        self.task.mkdir(parents=True)
        self.opt.mkdir(parents=True)
        with zipfile.ZipFile(code) as zf:
            zf.extractall(self.task)
        for layer in layers:  # in the template's order: a later layer's file wins, as on Lambda
            with zipfile.ZipFile(layer) as zf:
                zf.extractall(self.opt)
        self.port = free_port()
        self.log_path = root / "rie.log"
        # Lambda's environment: only what the function is configured with and what Lambda sets itself
        self.env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(root), "TZ": ":UTC",
            "PYTHONPATH": os.pathsep.join([str(runtime_client), str(self.task), str(self.opt / "python")]),
            "LAMBDA_TASK_ROOT": str(self.task), "SIEVE_CONFIG": str(self.task / config),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(timeout_s), "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
            **env,
        }
        self.api_port = free_port()  # the Runtime API the runtime client polls (9001 unless told: one per emulator)
        self.cmd = [str(rie), "--runtime-interface-emulator-address", f"127.0.0.1:{self.port}",
                    "--runtime-api-address", f"127.0.0.1:{self.api_port}",
                    str(python), "-S", "-m", "awslambdaric", handler]
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "LambdaUnderRie":
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.cmd, cwd=self.task, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"the emulator did not listen: {self.log()}")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def invoke(self, event, timeout: float = 120) -> dict:
        """The function's response, or Lambda's error document ({"errorType", "errorMessage", ...})."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/2015-03-31/functions/function/invocations",
                                     data=json.dumps(event).encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (loopback)
                body = resp.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()
        return json.loads(body) if body else {}

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""


def is_error(response) -> bool:
    return isinstance(response, dict) and "errorType" in response and "errorMessage" in response


class LambdaInvokeApi:
    """The Lambda Invoke API (POST /2015-03-31/functions/<name>/invocations) in front of one emulator, for a
    function that invokes itself (AWS_ENDPOINT_URL_LAMBDA points boto3 here). `Event` invocations are
    answered 202 at once and run after the invocation in progress, as Lambda queues them (the emulator
    runs one invocation at a time); each one's function name, payload and response are kept in `events`."""

    def __init__(self, emu: LambdaUnderRie):
        import http.server
        import queue
        import threading

        self.emu = emu
        self.events: list[dict] = []
        self._queue: queue.Queue = queue.Queue()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                parts = self.path.split("/")
                name = urllib.request.unquote(parts[3]) if len(parts) > 4 and parts[2] == "functions" else "?"
                kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
                if kind == "Event":
                    api._queue.put((name, body))
                    self.send_response(202)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                result = api.emu.invoke(json.loads(body or b"{}"))
                out = json.dumps(result).encode()
                self.send_response(200)
                if is_error(result):
                    self.send_header("X-Amz-Function-Error", "Unhandled")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._run_events, daemon=True).start()

    def _run_events(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            name, body = item
            time.sleep(0.2)  # after the invocation that queued it has returned
            response = self.emu.invoke(json.loads(body or b"{}"))
            self.events.append({"function": name, "payload": json.loads(body or b"{}"), "response": response})

    def wait_events(self, n: int, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.events) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.events

    def close(self) -> None:
        self._queue.put(None)
        self.server.shutdown()
