"""What every manager of a child process needs: a free port, a child that dies with its parent, a file
replaced atomically, the processes of a group. One definition each, shared by :mod:`infadapter.serving`
and :mod:`infadapter.runtime.local`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import tempfile
import threading
from pathlib import Path

_HANDED_OUT: set[int] = set()
_PORTS_LOCK = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free now on ``host`` and not handed out before by this process.

    Remembering the ports handed out keeps two children started together (their ports asked for before
    either binds) from getting the same one.
    """
    with _PORTS_LOCK:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                return port


def port_in_use(port: int, address: str = "127.0.0.1") -> bool:
    host = "127.0.0.1" if address in ("0.0.0.0", "localhost") else address
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """In the child before exec (``preexec_fn``): the kernel sends ``sig`` when the *thread* that started it
    dies, even by SIGKILL (``PR_SET_PDEATHSIG``), so a killed ``infadapter`` leaves no child behind."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # 1 = PR_SET_PDEATHSIG


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` at once: a concurrent reader (Envoy watching its EDS files, a second
    process reading a manifest) sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def processes_in_group(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid`` (a server and the children it forked)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry))
    return found
