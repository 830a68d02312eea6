"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, controller-manager, scheduler and kwok.

The binaries come from ``scripts/build-control-plane.sh`` (built from the Go module proxy, cached outside the
repository). What runs is what a cluster runs, minus kubelets: kwok fakes the nodes and plays the kubelet for
pod status, and a Stage of our own (``stages.yaml`` beside this file) plays it for in-place resize.

* etcd with ``--unsafe-no-fsync`` (a test cluster: durability across host crashes is not needed);
* the apiserver with RBAC and token authentication: ``admin`` (system:masters), one identity per component,
  and an audit log (JSON, metadata level) so tests count the requests a client made per resource and verb;
* the controller-manager with ``--use-service-account-credentials``: every controller runs under its own
  ServiceAccount, so Deployments, ReplicaSets, garbage collection and tokens behave as in a cluster;
* the scheduler (kwok does not schedule);
* kwok, managing only Nodes annotated ``kwok.x-k8s.io/node: fake``.

Used by ``tests/cluster/conftest.py`` (one instance per test run) and ``benchmarks/operator.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "scripts" / "build-control-plane.sh"
STAGES = Path(__file__).with_name("stages.yaml")
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
ADMIN_TOKEN = "admin-token-for-tests"
#: the identities of the control plane itself: their requests are not audited
COMPONENTS = {"kube-controller-manager": "system:kube-controller-manager", "kube-scheduler": "system:kube-scheduler", "kwok": "kwok"}

AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "None", "users": ["system:kube-controller-manager", "system:kube-scheduler", "kwok", "system:apiserver"]},
        {"level": "None", "userGroups": ["system:serviceaccounts:kube-system"]},
        # the bodies of writes to our own resources: a test that finds an unexpected write can say what it was
        {"level": "Request", "verbs": ["patch", "update"], "resources": [{"group": "infadapter.io"}]},
        {"level": "Metadata"},
    ],
}


class ControlPlaneUnavailable(RuntimeError):
    """The control plane cannot run here (no Go to build it); the reason says what is missing."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_binaries() -> Path:
    """The bin directory of the cached control-plane build (builds it when missing: about 9 min from empty Go caches on 2 cores, 514 s measured)."""
    if shutil.which("go") is None:
        raise ControlPlaneUnavailable("Go is not installed: scripts/build-control-plane.sh needs Go >= 1.26 and the Go module proxy")
    out = subprocess.run(["bash", str(BUILD_SCRIPT)], check=False, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"scripts/build-control-plane.sh failed ({out.returncode}):\n{out.stderr[-4000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class ControlPlane:
    """Starts on ``start()``, stops every process it started on ``stop()`` (also after a failed start)."""

    bin_dir: Path
    workdir: Path
    etcd_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    processes: dict[str, Process] = field(default_factory=dict)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "certs" / "apiserver.crt"

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def kubeconfig(self, name: str = "admin") -> Path:
        return self.workdir / f"{name}.kubeconfig"

    # ------------------------------------------------------------------ start / stop
    def start(self) -> ControlPlane:
        try:
            self._prepare()
            self.start_etcd()
            self.start_apiserver()
            for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
                self._start_component(name)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self._stop_process(name)

    def _stop_process(self, name: str) -> None:
        proc = self.processes.pop(name, None)
        if proc is None or proc.popen.poll() is not None:
            return
        proc.popen.send_signal(signal.SIGTERM)
        try:
            proc.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(timeout=10)

    def _spawn(self, name: str, args: list[str]) -> Process:
        log = self.workdir / f"{name}.log"
        handle = log.open("ab")
        popen = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        handle.close()
        proc = Process(name, popen, log)
        self.processes[name] = proc
        return proc

    def _prepare(self) -> None:
        (self.workdir / "certs").mkdir(parents=True, exist_ok=True)
        key = self.workdir / "sa.key"
        if not key.exists():
            subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
            subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(self.workdir / "sa.pub")], check=True, capture_output=True)
        tokens = [f"{ADMIN_TOKEN},admin,admin,system:masters"]
        # kwok plays every kubelet (node status, leases, pod status): it gets the masters group
        tokens += [f"{name}-token,{user},{user},{'system:masters' if name == 'kwok' else ''}" for name, user in COMPONENTS.items()]
        (self.workdir / "tokens.csv").write_text("\n".join(tokens) + "\n")
        (self.workdir / "audit-policy.yaml").write_text(yaml.safe_dump(AUDIT_POLICY))

    def start_etcd(self) -> None:
        data = self.workdir / "etcd"
        url = f"http://127.0.0.1:{self.etcd_port}"
        args = [
            str(self.bin_dir / "etcd"),
            f"--data-dir={data}",
            f"--listen-client-urls={url}",
            f"--advertise-client-urls={url}",
            f"--listen-peer-urls=http://127.0.0.1:{free_port()}",
            "--unsafe-no-fsync",
            "--log-level=warn",
            "--quota-backend-bytes=4294967296",
        ]
        proc = self._spawn("etcd", args)
        self._wait(lambda: _http_ok(f"{url}/health"), proc, 30, "etcd /health")

    def start_apiserver(self) -> None:
        wd = self.workdir
        args = [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.api_port}",
            f"--cert-dir={wd / 'certs'}",
            "--authorization-mode=RBAC",
            f"--token-auth-file={wd / 'tokens.csv'}",
            f"--service-account-key-file={wd / 'sa.pub'}",
            f"--service-account-signing-key-file={wd / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            f"--audit-policy-file={wd / 'audit-policy.yaml'}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-maxsize=0",
        ]
        proc = self._spawn("kube-apiserver", args)
        self._wait(lambda: self.ca_file.exists() and _https_ok(f"{self.server}/readyz", self.ca_file, ADMIN_TOKEN), proc, 90, "kube-apiserver /readyz")
        self._write_kubeconfig("admin", ADMIN_TOKEN)
        for name in COMPONENTS:
            self._write_kubeconfig(name, f"{name}-token")

    def _start_component(self, name: str) -> None:
        kubeconfig = str(self.kubeconfig(name))
        args: list[str]
        if name == "kube-controller-manager":
            args = [
                str(self.bin_dir / name),
                f"--kubeconfig={kubeconfig}",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={self.workdir / 'sa.key'}",
                f"--root-ca-file={self.ca_file}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
                # kwok renews the fake nodes' leases from the same two cores as everything else: under a benchmark's
                # load a renewal came late past the default 50 s, every node went NotReady and its pods with it
                # (the steady-state writes measured were those Ready flips, not the operator's)
                "--node-monitor-grace-period=300s",
            ]
        elif name == "kube-scheduler":
            args = [str(self.bin_dir / name), f"--kubeconfig={kubeconfig}", "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={free_port()}"]
        else:
            stages = self.bin_dir / "kwok-stages"
            configs = [str(p) for p in sorted(stages.glob("*.yaml")) if p.name != "pod-ready.yaml"] + [str(STAGES)]
            args = [
                str(self.bin_dir / "kwok"),
                f"--kubeconfig={kubeconfig}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
                "--cidr=10.244.0.0/16",
                "--node-ip=10.0.0.1",
                f"--server-address=127.0.0.1:{free_port()}",
            ]
            args += [f"--config={c}" for c in configs]
        self._spawn(name, args)
        time.sleep(0.2)
        proc = self.processes[name]
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{name} exited at start ({proc.popen.returncode}):\n{_tail(proc.log)}")

    def _write_kubeconfig(self, name: str, token: str) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": "test", "user": name, "namespace": "default"}}],
            "current-context": name,
        }
        self.kubeconfig(name).write_text(yaml.safe_dump(config))

    def write_token_kubeconfig(self, path: Path, token: str, namespace: str = "default") -> Path:
        """A kubeconfig for a bearer token (a ServiceAccount's, from a TokenRequest)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": "sa", "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "test", "user": "sa", "namespace": namespace}}],
            "current-context": "sa",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def _wait(self, check: Any, proc: Process, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}) before {what}:\n{_tail(proc.log)}")
            with contextlib.suppress(OSError):
                if check():
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{what} not ready after {timeout_s:.0f} s:\n{_tail(proc.log)}")

    # ------------------------------------------------------------------ faults
    def restart_apiserver_and_etcd(self, down_s: float = 1.0) -> None:
        """Stop the apiserver and etcd, wait, start them again on the same ports and data (a control-plane outage)."""
        self._stop_process("kube-apiserver")
        self._stop_process("etcd")
        time.sleep(down_s)
        self.start_etcd()
        self.start_apiserver()

    # ------------------------------------------------------------------ audit
    def audit_mark(self) -> int:
        """The audit log's size now: :meth:`audit_since` counts what was logged after it."""
        return self.audit_log.stat().st_size if self.audit_log.exists() else 0

    def audit_since(self, mark: int, user: str | None = None) -> list[dict[str, Any]]:
        if not self.audit_log.exists():
            return []
        with self.audit_log.open("rb") as fh:
            fh.seek(mark)
            lines = fh.read().splitlines()
        events = [json.loads(line) for line in lines if line.strip()]
        return [e for e in events if user is None or e.get("user", {}).get("username") == user]


def count_requests(events: list[Mapping[str, Any]]) -> Counter[tuple[str, str]]:
    """(resource[/subresource], verb) -> number of requests."""
    counts: Counter[tuple[str, str]] = Counter()
    for event in events:
        ref = event.get("objectRef") or {}
        resource = str(ref.get("resource", event.get("requestURI", "?")))
        if ref.get("subresource"):
            resource += "/" + str(ref["subresource"])
        counts[(resource, str(event.get("verb", "?")))] += 1
    return counts


WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def _http_ok(url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


def _https_ok(url: str, ca_file: Path, token: str) -> bool:
    import ssl
    import urllib.error
    import urllib.request

    context = ssl.create_default_context(cafile=str(ca_file))
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError:
        return False


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def running_control_plane(workdir: Path | None = None) -> Iterator[ControlPlane]:
    """Build (cached) and start a control plane; stop it and remove its files on exit, also on failure."""
    bin_dir = build_binaries()
    tmp = Path(tempfile.mkdtemp(prefix="infadapter-cp-")) if workdir is None else workdir
    plane = ControlPlane(bin_dir=bin_dir, workdir=tmp)
    try:
        yield plane.start()
    finally:
        plane.stop()
        if workdir is None and not os.environ.get("INFADAPTER_KEEP_CLUSTER"):
            shutil.rmtree(tmp, ignore_errors=True)
