"""Background services that `sieve up` starts and `sieve down` stops, by pid and only those.

Each started service leaves `<state dir>/pids/<name>.json` with its pid and a marker that must
appear in /proc/<pid>/cmdline, so `down` never signals a recycled pid.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from processors.errors import ServiceError


def state_dir() -> Path:
    d = Path(os.environ.get("SIEVE_STATE_DIR") or ".sieve")
    (d / "pids").mkdir(parents=True, exist_ok=True)
    (d / "logs").mkdir(parents=True, exist_ok=True)
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_http(url: str, timeout: float, name: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback
                if r.status < 500:
                    return
        except Exception as exc:
            last = exc
        time.sleep(0.2)
    tail = ""
    if log and log.exists():
        tail = "\n--- last lines of " + str(log) + " ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    raise ServiceError(f"{name} did not answer at {url} within {timeout:.0f}s ({last}){tail}")


@dataclass(frozen=True)
class Started:
    name: str
    pid: int
    url: str
    started_here: bool


def _alive(pid: int, marker: str) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return marker in cmd


def start(name: str, argv: list[str], *, host: str, port: int, health_path: str, marker: str,
          timeout: float = 30.0, env: dict[str, str] | None = None) -> Started:
    """Start `argv` detached unless something already listens on host:port (then reuse it)."""
    url = f"http://{host}:{port}"
    if port_open(host, port):
        wait_http(url + health_path, timeout, name)
        return Started(name, 0, url, started_here=False)
    sd = state_dir()
    log = sd / "logs" / f"{name}.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, **(env or {})})
    (sd / "pids" / f"{name}.json").write_text(json.dumps({"pid": proc.pid, "marker": marker, "url": url}))
    try:
        wait_http(url + health_path, timeout, name, log)
    except ServiceError:
        if proc.poll() is None:
            proc.terminate()
        (sd / "pids" / f"{name}.json").unlink(missing_ok=True)
        raise
    return Started(name, proc.pid, url, started_here=True)


def stop(name: str, timeout: float = 10.0) -> str:
    pidfile = state_dir() / "pids" / f"{name}.json"
    if not pidfile.exists():
        return "not started by sieve"
    info = json.loads(pidfile.read_text())
    pid, marker = int(info["pid"]), info["marker"]
    if not _alive(pid, marker):
        pidfile.unlink(missing_ok=True)
        return "already stopped"
    os.killpg(pid, signal.SIGTERM) if _is_group_leader(pid) else os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid, marker):
        time.sleep(0.1)
    if _alive(pid, marker):
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    return f"stopped (pid {pid})"


def _is_group_leader(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False


def started_services() -> list[str]:
    return sorted(p.stem for p in (state_dir() / "pids").glob("*.json"))


def moto_argv(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]
