"""Operator settings: documented fields, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from infadapter.errors import FieldError, InvalidInput
from infadapter.runtime.kube.objects import Images


@dataclass(frozen=True)
class OperatorConfig:
    """Everything the operator is told from outside (environment variables ``INFADAPTER_*``)."""

    #: Prometheus base URL for observe (``INFADAPTER_PROMETHEUS_URL``)
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"
    #: a profile file used when a resource names no profile ConfigMap (``INFADAPTER_DEFAULT_PROFILE``)
    default_profile: str = ""
    #: policy name for :func:`infadapter.policies.make_policy` (``INFADAPTER_POLICY``)
    policy: str = "ours"
    #: the API server URL, only to bypass in-cluster/kubeconfig login (tests) (``INFADAPTER_KUBE_SERVER``)
    kube_server: str = ""
    #: how often the per-resource timer wakes to see whether a tick is due (``INFADAPTER_TIMER_RESOLUTION_S``)
    timer_resolution_s: float = 1.0
    #: a CA bundle for an https Prometheus (``INFADAPTER_PROMETHEUS_CA_FILE``), a file holding a bearer token
    #: for it (``INFADAPTER_PROMETHEUS_TOKEN_FILE``, re-read at each query: projected tokens rotate)
    prometheus_ca_file: str = ""
    prometheus_token_file: str = ""
    #: Prometheus query timeout (``INFADAPTER_PROMETHEUS_TIMEOUT_S``)
    prometheus_timeout_s: float = 5.0
    #: how often Prometheus scrapes the routers (``INFADAPTER_SCRAPE_INTERVAL_S``: seconds or a duration such as
    #: ``5s``; the chart passes its PodMonitor's interval): the observed history's window follows it
    scrape_interval_s: float = 5.0
    #: how long a Deferred or in-progress in-place resize is waited on before a rollout (``INFADAPTER_RESIZE_WAIT_S``)
    resize_wait_s: float = 60.0
    #: ask each router pod which weights Envoy applies before a leaving variant is drained
    #: (``INFADAPTER_CONFIRM_WEIGHTS``; the chart turns it on: it needs the operator inside the cluster's network)
    confirm_weights: bool = False
    #: keep the last N seconds of the per-second history in memory per resource (bounded memory)
    max_history_s: int = 3600
    #: serve the infadapter_* metrics on this port, 0 = not at all (``INFADAPTER_METRICS_PORT``)
    metrics_port: int = 0
    images: Images = field(default_factory=Images)

    @staticmethod
    def from_env(env: Mapping[str, str] | None = None) -> OperatorConfig:
        """Read every ``INFADAPTER_*`` variable; raise InvalidInput naming each bad one (not only the first)."""
        read = _EnvReader(os.environ if env is None else env)
        config = OperatorConfig(
            prometheus_url=read.env.get("INFADAPTER_PROMETHEUS_URL", OperatorConfig.prometheus_url),
            default_profile=read.env.get("INFADAPTER_DEFAULT_PROFILE", ""),
            prometheus_ca_file=read.file("INFADAPTER_PROMETHEUS_CA_FILE"),
            prometheus_token_file=read.file("INFADAPTER_PROMETHEUS_TOKEN_FILE"),
            policy=read.policy("INFADAPTER_POLICY"),
            kube_server=read.env.get("INFADAPTER_KUBE_SERVER", ""),
            timer_resolution_s=read.number("INFADAPTER_TIMER_RESOLUTION_S", 1.0),
            prometheus_timeout_s=read.number("INFADAPTER_PROMETHEUS_TIMEOUT_S", 5.0),
            scrape_interval_s=read.duration("INFADAPTER_SCRAPE_INTERVAL_S", 5.0),
            resize_wait_s=read.number("INFADAPTER_RESIZE_WAIT_S", 60.0),
            confirm_weights=(read.env.get("INFADAPTER_CONFIRM_WEIGHTS") or "").strip().lower() in ("1", "true", "yes"),
            max_history_s=int(read.number("INFADAPTER_MAX_HISTORY_S", 3600)),
            metrics_port=int(read.env.get("INFADAPTER_METRICS_PORT") or 0) if (read.env.get("INFADAPTER_METRICS_PORT") or "0").isdigit() else 0,
            images=read.images(),
        )
        if read.errors:
            raise InvalidInput(read.errors, "operator settings")
        return config


class _EnvReader:
    """Reads typed settings from the environment, collecting every error so that one report names them all."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.errors: list[FieldError] = []

    def number(self, key: str, default: float) -> float:
        raw = self.env.get(key)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            self.errors.append(FieldError(key, f"{raw!r} is not a number", "set a number of seconds"))
            return default
        if not value > 0:
            self.errors.append(FieldError(key, f"must be > 0, got {raw}", "set a positive number"))
            return default
        return value

    def duration(self, key: str, default: float) -> float:
        raw = (self.env.get(key) or "").strip()
        if raw == "":
            return default
        match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", raw)
        if match is None or float(match[1]) <= 0:
            self.errors.append(FieldError(key, f"{raw!r} is not a positive duration", "set seconds (5) or a duration (5s, 500ms, 1m)"))
            return default
        return float(match[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0}.get(match[2] or "s", 1.0)

    def policy(self, key: str) -> str:
        policy = self.env.get(key, "ours")
        kind, colon, rest = policy.partition(":")
        if not (policy in ("ours", "infadapter-paper", "msplus") or (kind in ("vpa", "static") and colon and rest)):
            # the oracle needs the future: it exists only in the simulator
            hint = "ours, infadapter-paper, msplus, vpa:<variant> or static:<variant>@<cores>"
            self.errors.append(FieldError(key, f"unknown policy {policy!r}", hint))
        return policy

    def file(self, key: str) -> str:
        path = self.env.get(key, "")
        if path and not os.path.isfile(path):
            self.errors.append(FieldError(key, f"{path!r} is not a readable file", "mount the file into the operator's pod, or unset it"))
        return path

    def images(self) -> Images:
        defaults = Images()
        return Images(
            triton=self.env.get("INFADAPTER_TRITON_IMAGE", defaults.triton),
            envoy=self.env.get("INFADAPTER_ENVOY_IMAGE", defaults.envoy),
            agent=self.env.get("INFADAPTER_AGENT_IMAGE", defaults.agent),
            s3=self.env.get("INFADAPTER_S3_IMAGE", defaults.s3),
            pull_policy=self.env.get("INFADAPTER_IMAGE_PULL_POLICY", defaults.pull_policy),
        )
