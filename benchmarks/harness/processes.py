"""Child processes: free loopback ports, a server started and stopped whatever happens, the
provider sandbox in its own process and its control API."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Self

import requests

ROOT = Path(__file__).resolve().parent.parent.parent
# The product's packages, for the scripts and the processes they start.
sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
# The requests that list an imported calendar's changes, as the sandbox counts them.
LIST_ENDPOINT = {"google": "google.events.list", "outlook": "graph.delta"}


def exit_on_sigterm() -> None:
    """A plain SIGTERM would skip the `finally` blocks that stop the child processes."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def free_ports(count: int) -> list[int]:
    """Ports the kernel considers free now (held together so that they differ)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def stop_processes(processes: Iterable[subprocess.Popen[bytes]], *, timeout: float) -> None:
    """SIGTERM to all that still run, then SIGKILL to any not gone within `timeout` seconds."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.terminate()
    for process in running:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


class Server:
    """A child process serving HTTP on loopback, stopped on exit whatever happens.

    Ready once `url + ready_path` answers 2xx. When the log of a process that exited early holds
    `retry_if`, it is started again (up to 5 times)."""

    def __init__(self, command: list[str], *, name: str, url: str, ready_path: str, log: Path,
                 ready_timeout: float = 60, stop_timeout: float = 10,
                 retry_if: str | None = None) -> None:  # fmt: skip
        self.command, self.name, self.url, self.ready_path = command, name, url, ready_path
        self.log, self.ready_timeout, self.stop_timeout = log, ready_timeout, stop_timeout
        self.retry_if = retry_if
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_seconds = 0.0

    def __enter__(self) -> Self:
        started = time.perf_counter()
        try:
            for attempt in range(5):
                with self.log.open("wb") as output:
                    self.process = subprocess.Popen(  # noqa: S603 (our interpreter, our arguments)
                        self.command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT
                    )
                if self._wait_until_ready(self.process):
                    break
                if attempt == 4 or not self.retry_if or self.retry_if not in self.log_tail():
                    raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
                time.sleep(1)
        except BaseException:
            self.stop()
            raise
        self.ready_seconds = time.perf_counter() - started
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> bool:
        """True once it answers; False if it exited first."""
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            with contextlib.suppress(requests.RequestException):
                answer = requests.get(self.url + self.ready_path, timeout=1)
                # Ours, not another server that took the port: still running once it answers.
                if answer.ok and process.poll() is None:
                    return True
            time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} did not answer within {self.ready_timeout:.0f} s:\n{self.log_tail()}"
        )

    def log_tail(self) -> str:
        return log_tail(self.log)

    def stop(self) -> None:
        if self.process is not None:
            stop_processes([self.process], timeout=self.stop_timeout)

    @property
    def pid(self) -> int:
        return self.process.pid if self.process else 0


class SandboxProcess(Server):
    """The provider sandbox in a child process: `manage.py calendar_sandbox` with `events`
    entries in each primary calendar, unless another `command` is given."""

    def __init__(self, *, port: int, tls_port: int, state_dir: Path, log: Path,
                 events: int = 200, command: list[str] | None = None) -> None:  # fmt: skip
        command = command or [
            sys.executable, "manage.py", "calendar_sandbox", f"--host={HOST}", f"--port={port}",
            f"--tls-port={tls_port}", f"--events={events}", "--seed=1", f"--state-dir={state_dir}",
        ]  # fmt: skip
        # A port picked free may be taken meanwhile (by a client socket, for a moment).
        super().__init__(command, name="The sandbox", url=f"http://{HOST}:{port}",
                         ready_path="/_sandbox/api/counters", log=log, ready_timeout=180,
                         retry_if="Cannot listen")  # fmt: skip
        self.http_url = self.url

    # The control API (README, "The provider sandbox").
    def counters(self) -> Counter[str]:
        response = requests.get(f"{self.http_url}/_sandbox/api/counters", timeout=10)
        response.raise_for_status()
        return Counter(response.json())

    def provider_requests(self) -> Counter[str]:
        """The counters of the providers' endpoints, the control API's own left out."""
        return Counter({k: v for k, v in self.counters().items() if not k.startswith("sandbox.")})

    def reset_counters(self) -> None:
        url = f"{self.http_url}/_sandbox/api/counters/reset"
        requests.post(url, timeout=10).raise_for_status()

    def invalidate_sync(self, email: str) -> None:
        url = f"{self.http_url}/_sandbox/api/accounts/{email}/invalidate-sync"
        requests.post(url, timeout=10).raise_for_status()

    def primary_entries(self, email: str) -> int:
        response = requests.get(f"{self.http_url}/_sandbox/api/accounts", timeout=10)
        response.raise_for_status()
        account = next(a for a in response.json() if a["email"] == email)
        return next(c["events"] for c in account["calendars"] if c["primary"])
