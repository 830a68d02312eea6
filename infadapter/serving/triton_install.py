"""Where the ``tritonserver`` of the ``nvidia-pytriton`` wheel is, and the environment it needs.

The fixes of ``ENVIRONMENT.md`` live here: ``LD_LIBRARY_PATH`` holds the wheel's ``nvidia_pytriton.libs``
and this Python's ``LIBDIR`` (else the python-backend stub loads Debian's libpython and every model
fails), the venv's ``bin`` is first on ``PATH`` (the stub finds the venv's packages through it), and a
backends directory holds the python backend with the stub copied in.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from infadapter.cache import cache_root
from infadapter.errors import ApplyFailed


@dataclass(frozen=True)
class TritonInstall:
    binary: Path
    libs: Path  # the wheel's bundled shared libraries
    python_backend: Path  # libtriton_python.so + triton_python_backend_utils.py
    stub: Path  # triton_python_backend_stub for this Python


def find_triton() -> TritonInstall:
    """Locate the tritonserver of the installed ``nvidia-pytriton`` wheel, or raise ApplyFailed."""
    try:
        import pytriton
    except ImportError as exc:
        raise ApplyFailed("nvidia-pytriton is not installed: pip install 'infadapter[serving]'") from exc
    base = Path(pytriton.__file__).parent / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    install = TritonInstall(
        binary=base / "bin" / "tritonserver",
        libs=base.parent.parent / "nvidia_pytriton.libs",
        python_backend=base / "backends" / "python",
        stub=base / "python_backend_stubs" / version / "triton_python_backend_stub",
    )
    for path in (install.binary, install.python_backend, install.stub):
        if not path.exists():
            raise ApplyFailed(f"tritonserver install incomplete: {path} is missing (Python {version} supported?)")
    return install


def triton_env(install: TritonInstall, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment that makes the python-backend stub load the right libpython and packages.

    OpenMP pools get one thread (the model instances are single-threaded, see ``Serving.env``) unless
    ``base`` says otherwise: sized from the machine's cores they would oversubscribe a CPU quota.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("OMP_NUM_THREADS", "1")
    libdir = str(sysconfig.get_config_var("LIBDIR") or "")
    parts = [str(install.libs), libdir, env.get("LD_LIBRARY_PATH", "")]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in parts if p)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
    return env


def backends_dir(install: TritonInstall, cache_dir: Path | None = None) -> Path:
    """A ``--backend-directory`` with ``python/`` holding the backend and its stub (built once, atomically)."""
    cache = cache_dir or cache_root() / "triton"
    stamp = f"{install.binary.stat().st_size}-{int(install.stub.stat().st_mtime)}"
    target = cache / f"backends-{stamp}"
    if (target / "python" / "triton_python_backend_stub").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".backends-", dir=cache))
    shutil.copytree(install.python_backend, tmp / "python", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(install.stub, tmp / "python" / "triton_python_backend_stub")
    try:
        tmp.rename(target)
    except OSError:  # another process won the race: use its copy
        shutil.rmtree(tmp, ignore_errors=True)
    return target
