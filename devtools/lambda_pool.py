"""Lambda-like execution environments for the local server: a pool of worker processes.

Lambda runs each invocation alone in an execution environment (a process with its own module
state, kept warm between invocations) and runs concurrent invocations in separate environments.
:class:`LambdaPool` does the same locally: ``size`` worker processes, each importing the
handlers once at start and then serving one invocation at a time. :meth:`LambdaPool.invoke`
hands an invocation to an idle worker and waits for its answer; when every worker is busy it
waits for one to come free (Lambda would start another environment; the queue keeps the local
machine's load bounded instead).

Handlers are named by entries, ``"package.module:attribute"`` (``"metering_api.app:handler"``),
so that the worker, not the caller, imports them. Workers are started with ``spawn``: the
server has threads running (DynamoDB Local's client, the Stripe stand-in) and forking a process
with threads can copy a held lock. Each worker inherits the environment as it is at
:meth:`LambdaPool.start` (the functions' configuration).

Before each invocation a worker clears what Powertools' loggers were given by the previous one
(appended keys such as ``org_id``, the Lambda context keys), so that no log line carries another
invocation's context; Lambda itself gives separate functions separate processes, while here one
worker serves every function.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from devtools.lambda_context import FakeLambdaContext

log = logging.getLogger(__name__)

DEFAULT_SIZE = 4
START_TIMEOUT_SECONDS = 120.0  # importing boto3 and the functions on a busy machine
# Past the invocation's own timeout: the time for the worker to send a large answer back.
ANSWER_GRACE_SECONDS = 5.0


class InvocationError(RuntimeError):
    """The invocation failed: the handler raised (its traceback was printed by the worker),
    timed out, or its worker died."""


# --------------------------------------------------------------------------
# The worker process
# --------------------------------------------------------------------------


def _resolve(entry: str, cache: dict[str, Callable[..., Any]]) -> Callable[..., Any]:
    handler = cache.get(entry)
    if handler is None:
        module_name, _, attribute = entry.partition(":")
        handler = getattr(importlib.import_module(module_name), attribute or "handler")
        cache[entry] = handler
    return handler


def _powertools_loggers() -> list[Any]:
    """Every (parent) Powertools logger held by a module: the functions' ``logger = Logger()``.
    A child logger shares its parent's state."""
    logging_module = sys.modules.get("aws_lambda_powertools.logging.logger")
    if logging_module is None:
        return []  # no handler uses Powertools' logger
    logger_class = logging_module.Logger
    found: list[Any] = []
    for module in list(sys.modules.values()):
        for value in list(vars(module).values()) if module is not None else ():
            if isinstance(value, logger_class) and not value.child and value not in found:
                found.append(value)
    return found


def _clear_log_context(loggers: list[Any]) -> None:
    for logger in loggers:
        logger.clear_state()  # keys appended with append_keys, and the Lambda context's
        logger.thread_safe_clear_keys()


def _serve(conn: Connection, preload: Sequence[str]) -> None:
    """A worker's life: import the handlers, say so, then run invocations until told to stop
    (``None``) or until the server goes away (end of the pipe)."""
    # Ctrl-C reaches the whole process group: the server decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Log lines as they come, even when the server's output goes to a file or a pipe.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    handlers: dict[str, Callable[..., Any]] = {}
    try:
        for entry in preload:
            _resolve(entry, handlers)
    except BaseException:
        conn.send(("failed", traceback.format_exc()))
        return
    loggers = _powertools_loggers()
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        entry, event, function_name, request_id, seconds = message
        try:
            if entry not in handlers:
                _resolve(entry, handlers)
                loggers = _powertools_loggers()
            handler = handlers[entry]
            _clear_log_context(loggers)
            context = FakeLambdaContext(
                function_name=function_name, aws_request_id=request_id, timeout_seconds=seconds
            )
            answer: tuple[str, Any] = ("ok", handler(event, context))
        except Exception as err:
            traceback.print_exc()  # the function's log, as Lambda's runtime prints it
            sys.stderr.flush()
            answer = ("error", f"{entry} raised {type(err).__name__}: {err}")
        try:
            conn.send(answer)
        except Exception as err:  # an answer that cannot be pickled
            conn.send(("error", f"{entry} returned what cannot be sent back: {err}"))


# --------------------------------------------------------------------------
# The server's side
# --------------------------------------------------------------------------


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection


class LambdaPool:
    """``size`` warm worker processes, each importing the ``preload`` entries once. An
    invocation not answered ``answer_grace`` seconds after its timeout loses its worker."""

    def __init__(
        self,
        size: int = DEFAULT_SIZE,
        preload: Sequence[str] = (),
        *,
        answer_grace: float = ANSWER_GRACE_SECONDS,
    ) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one worker")
        self.size = size
        self.preload = tuple(preload)
        self.answer_grace = answer_grace
        self._context = multiprocessing.get_context("spawn")
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()

    # -- life cycle ---------------------------------------------------------

    def start(self) -> LambdaPool:
        """Start every worker (all at once) and wait until each has imported its handlers."""
        started = [self._spawn() for _ in range(self.size)]
        try:
            for worker in started:
                self._await_ready(worker)
                self._idle.put(worker)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self) -> _Worker:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_serve, args=(theirs, self.preload), name="lambda-worker", daemon=True
        )
        process.start()
        theirs.close()
        worker = _Worker(process, ours)
        with self._lock:
            self._workers.append(worker)
        return worker

    def _await_ready(self, worker: _Worker) -> None:
        if not worker.conn.poll(START_TIMEOUT_SECONDS):
            raise RuntimeError(f"a worker did not start within {START_TIMEOUT_SECONDS:.0f} s")
        try:
            status, detail = worker.conn.recv()
        except EOFError:
            raise RuntimeError("a worker exited while starting") from None
        if status != "ready":
            raise RuntimeError(f"a worker could not import its handlers:\n{detail}")

    def stop(self) -> None:
        """Stop every worker; invocations still running fail with :class:`InvocationError`."""
        self._closed.set()
        with self._lock:
            workers = list(self._workers)
            self._workers.clear()
        for worker in workers:
            with _quiet():
                worker.conn.send(None)
        for worker in workers:
            _end(worker)

    def __enter__(self) -> LambdaPool:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [w.process.pid for w in self._workers if w.process.pid is not None]

    # -- invocations --------------------------------------------------------

    def function(
        self, entry: str, function_name: str | None = None, timeout: float | None = None
    ) -> PooledFunction:
        """A handler-like callable that runs ``entry`` in this pool."""
        return PooledFunction(self, entry, function_name, timeout)

    def invoke(
        self, entry: str, event: Any, function_name: str, request_id: str, seconds: float
    ) -> Any:
        """Run ``entry`` on ``event`` in an idle worker (waiting for one if all are busy) with
        ``seconds`` to do it; its result, or :class:`InvocationError`."""
        worker = self._checkout()
        try:
            worker.conn.send((entry, event, function_name, request_id, seconds))
            if not worker.conn.poll(seconds + self.answer_grace):
                raise TimeoutError(f"{entry} timed out after {seconds:.0f} s")
            status, value = worker.conn.recv()
        except (EOFError, OSError, TimeoutError) as err:
            # As Lambda does after a timeout or a crash: the environment is thrown away.
            self._replace(worker)
            raise InvocationError(f"{entry}: {err or 'the worker exited'}") from None
        except BaseException:
            self._idle.put(worker)  # e.g. an event that cannot be pickled: the worker is fine
            raise
        self._idle.put(worker)
        if status != "ok":
            raise InvocationError(value)
        return value

    def _checkout(self) -> _Worker:
        while not self._closed.is_set():
            try:
                return self._idle.get(timeout=0.5)
            except queue.Empty:
                continue
        raise InvocationError("the local server is stopping")

    def _replace(self, worker: _Worker) -> None:
        with self._lock:
            if worker not in self._workers:
                return  # stop() has it
            self._workers.remove(worker)
        _end(worker, polite=False)
        if self._closed.is_set():
            return
        try:
            fresh = self._spawn()
            self._await_ready(fresh)
        except Exception:
            log.exception("could not replace a lambda worker; the pool is smaller by one")
            return
        self._idle.put(fresh)


@dataclass(frozen=True)
class PooledFunction:
    """A function run by a :class:`LambdaPool`: called as a handler, ``(event, context)``.
    The context's request id and remaining time go with the event; ``function_name`` and
    ``timeout`` (seconds), when given, replace the context's."""

    pool: LambdaPool
    entry: str
    function_name: str | None = None
    timeout: float | None = None

    def __call__(self, event: Any, context: Any = None) -> Any:
        context = context or FakeLambdaContext()
        name = self.function_name or context.function_name
        if self.timeout is not None:
            seconds = self.timeout
        else:
            seconds = context.get_remaining_time_in_millis() / 1000
        return self.pool.invoke(self.entry, event, name, context.aws_request_id, seconds)


def _quiet() -> contextlib.suppress:
    """Ignore the errors of talking to a worker that is already gone."""
    return contextlib.suppress(OSError, EOFError, ValueError)


def _end(worker: _Worker, wait: float = 5.0, *, polite: bool = True) -> None:
    """Let a worker leave (``polite``: it was asked to), and make it if it does not within
    ``wait`` seconds."""
    if polite:
        worker.process.join(wait)
    if worker.process.is_alive():
        worker.process.terminate()
        worker.process.join(wait)
    if worker.process.is_alive():
        worker.process.kill()
        worker.process.join(wait)
    with _quiet():
        worker.conn.close()
    with _quiet():
        worker.process.close()


def default_size() -> int:
    """``$LOCAL_WORKERS`` or :data:`DEFAULT_SIZE`."""
    return int(os.environ.get("LOCAL_WORKERS") or DEFAULT_SIZE)
