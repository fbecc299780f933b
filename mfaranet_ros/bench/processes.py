"""Child processes of the benchmarks: their environment, a start barrier, their reports.

A benchmark that compares processes (N single-camera processes against one batched one,
a node against its camera) runs each side in a child started here. A child gets a copy of
this process's environment with its own additions; this process's ``os.environ`` is never
changed, so a benchmark can run inside any caller (a test session, a notebook).

Worker protocol (see :mod:`mfaranet_ros.bench.worker`): the child runs one function
``module:function(spec, ready)``; it calls ``ready()`` once set up, which prints
``{"ready": true}`` and waits for a line on stdin; its return value is its last stdout line,
as JSON. Releasing all workers of a group together makes their measured windows coincide.
"""
from __future__ import annotations

import json
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

__all__ = ["WorkerError", "Workers", "child_env", "python_command", "run_workers",
           "start_logged", "stop_processes", "peak_rss_mb", "own_peak_rss_mb"]

WORKER_MODULE = "mfaranet_ros.bench.worker"

#: Called while waiting for workers; returns why to give up (a dead node...) or None.
Watch = Callable[[], Optional[str]]


class WorkerError(RuntimeError):
    """A benchmark child that failed, timed out or said something unexpected."""


def child_env(overrides: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """A copy of ``os.environ`` for a child, with ``overrides`` (``os.environ`` is untouched)."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides or {})
    return env


def python_command(module: str, *args: str) -> List[str]:
    """``python -m module args...`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


class Workers:
    """Worker processes started together and released together; a context manager that
    kills whatever is still running on exit."""

    def __init__(self, target: str, specs: Sequence[Dict], env: Mapping[str, str],
                 watch: Optional[Watch] = None) -> None:
        self._watch = watch
        # stderr to files, not pipes: a chatty worker must not block on a full pipe.
        self._errs = [tempfile.TemporaryFile() for _ in specs]
        self._bufs = [b"" for _ in specs]
        self.procs = [subprocess.Popen(
            python_command(WORKER_MODULE, target, json.dumps(spec)), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=err, env=dict(env), bufsize=0)
            for spec, err in zip(specs, self._errs)]

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def stderr_tail(self, i: int, chars: int = 3000) -> str:
        self._errs[i].seek(0)
        return self._errs[i].read().decode(errors="replace")[-chars:]

    def _fail(self, i: int, what: str) -> WorkerError:
        return WorkerError(f"benchmark worker {i} {what}; its stderr ends with:\n"
                           f"{self.stderr_tail(i)}")

    def _read_line(self, i: int, deadline: float) -> bytes:
        """One stdout line of worker ``i``, polling ``watch`` while waiting."""
        proc = self.procs[i]
        while b"\n" not in self._bufs[i]:
            readable, _, _ = select.select([proc.stdout], [], [], 0.2)
            if readable:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    raise self._fail(i, f"exited (rc {proc.wait()}) before answering")
                self._bufs[i] += chunk
                continue
            problem = self._watch() if self._watch else None
            if problem:
                raise WorkerError(problem)
            if time.monotonic() > deadline:
                raise self._fail(i, "did not answer in time")
        line, _, self._bufs[i] = self._bufs[i].partition(b"\n")
        return line

    def _message(self, i: int, deadline: float) -> Dict:
        """The next JSON object worker ``i`` prints (stray lines, e.g. a library's, skipped)."""
        while True:
            line = self._read_line(i, deadline).strip()
            if line.startswith(b"{"):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    continue

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for i in range(len(self.procs)):
            if not self._message(i, deadline).get("ready"):
                raise self._fail(i, "answered before it was ready")

    def release(self) -> None:
        for proc in self.procs:
            proc.stdin.write(b"go\n")
            proc.stdin.flush()

    def reports(self, timeout: float) -> List[Dict]:
        deadline = time.monotonic() + timeout
        out = [self._message(i, deadline) for i in range(len(self.procs))]
        for i, proc in enumerate(self.procs):
            try:
                rc = proc.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise self._fail(i, "did not exit after its report") from None
            if rc != 0:
                raise self._fail(i, f"failed (rc {rc})")
        return out

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                pipe.close()
        for err in self._errs:
            err.close()


def run_workers(target: str, specs: Sequence[Dict], env: Mapping[str, str], timeout: float,
                watch: Optional[Watch] = None) -> List[Dict]:
    """Starts one worker per spec, releases them together once all are ready, and
    returns their reports in order. ``timeout`` bounds the set-up and the run, each."""
    with Workers(target, specs, env, watch) as group:
        group.wait_ready(timeout)
        group.release()
        return group.reports(timeout)


def start_logged(cmd: Sequence[str], env: Mapping[str, str], log_path: str) -> subprocess.Popen:
    """A long-running child (a node) with stdout and stderr in ``log_path``."""
    with open(log_path, "w") as log_file:
        return subprocess.Popen(list(cmd), stdout=log_file, stderr=subprocess.STDOUT,
                                env=dict(env))


def stop_processes(procs: Sequence[subprocess.Popen], grace_s: float = 20.0) -> None:
    """SIGINT (a ROS node's clean shutdown) to all, then kill what is left after ``grace_s``."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a live process, in MiB (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise WorkerError(f"/proc/{pid}/status has no VmHWM line")


def own_peak_rss_mb() -> float:
    """This process's peak resident memory, in MiB (the same figure as :func:`peak_rss_mb`)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
