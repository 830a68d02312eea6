"""The ``InferenceService`` spec: parse once at the edge, validate, apply defaults.

Every mode (operator, embedded, simulator, ``infadapter plan``) reads the same
typed :class:`InferenceServiceSpec`. Field names in YAML are camelCase, as in
the CRD (``crds/inferenceservice.yaml``); in Python they are snake_case with units
in the name. Invalid input raises :class:`~infadapter.errors.InvalidSpec` carrying
*every* error with its field path and a hint; nothing downstream touches raw dicts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import yaml
from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from infadapter.errors import FieldError, InvalidSpec
from infadapter.hardware import DEFAULT_ACCELERATOR
from infadapter.spec_errors import errors_from_validation
from infadapter.spec_fields import (
    _MODEL_NAME,
    _NAME,
    _SUBDOMAIN,
    ACCELERATOR_NAME_MAX,
    Accelerator,
    Budget,
    Flag,
    Number,
    ResourceGrid,
    VariantResources,
    Whole,
    _Model,
    _pattern_check,
    placement_name,
)
from infadapter.yamlfile import read_text, yaml_documents, yaml_error_text

API_GROUP = "infadapter.io"
API_VERSION = "v1alpha1"
KIND = "InferenceService"


class Mode(StrEnum):
    AUTO = "Auto"
    RECOMMEND = "Recommend"
    OFF = "Off"


class ResizePolicy(StrEnum):
    IN_PLACE_OR_RECREATE = "InPlaceOrRecreate"
    RECREATE = "Recreate"


class ModelSource(_Model):
    """Where a variant's model comes from and in what format."""

    uri: str = Field(default="", description="pvc://claim/path, http(s)://…, s3://…, file:///… or a path")
    format: Literal["onnx", "python", "savedmodel", "torchscript"] = "onnx"


class Variant(_Model):
    """One model variant: a point on the accuracy/compute trade-off."""

    name: str = Field(min_length=1, max_length=40)
    accuracy: Number = Field(ge=0.0, le=1.0, description="declared accuracy, e.g. ImageNet top-1 as a fraction")
    load_time_s: Number = Field(default=10.0, ge=0.0, le=3600.0, alias="loadTimeSeconds")
    source: ModelSource = ModelSource()
    resources: VariantResources = VariantResources()
    gpu: Flag = Field(default=False, description="allow GPU options for this variant (profile must have them)")
    #: the named accelerator types (the spec's ``accelerators``) it may also run on, each as its own
    #: deployment ``<name>-<type>`` beside the variant's own; None: every declared type
    accelerators: list[Annotated[str, Field(max_length=ACCELERATOR_NAME_MAX)]] | None = Field(default=None, max_length=16)
    #: the largest batches its servers may form (Triton's dynamic batcher): each adds, beside every deployment
    #: of the variant, one whose servers batch up to it (``<deployment>-b<n>``); the planner picks among them
    #: by their profiled capacity. A batch size is a server configuration, so changing it is a new deployment
    batch_sizes: list[Annotated[Whole, Field(ge=1, le=999)]] = Field(default_factory=list, max_length=8, alias="batchSizes")

    @field_validator("batch_sizes")
    @classmethod
    def _distinct_batches(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"batchSizes {value} lists a size twice; give each size once")
        return value

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} is not a DNS label; use lower-case letters, digits and '-' (e.g. resnet50)")
        return value


class Slo(_Model):
    latency_ms: Number = Field(default=750.0, gt=0, le=600_000, alias="latencyMs")
    percentile: Number = Field(default=99.0, gt=0, lt=100)


class Objective(_Model):
    """Weights of the objective: accuracy − cost_weight·cost/budget − transition_weight·transition.

    The paper calls them α (cost) and β (transition/loading cost).
    """

    cost_weight: Number = Field(default=0.05, ge=0, le=100)
    transition_weight: Number = Field(default=0.001, ge=0, le=100)


class Forecast(_Model):
    model: Literal["ewma", "lstm", "ets", "sarimax", "ours", "last"] = "ours"
    window_s: Whole = Field(default=600, ge=10, le=7 * 86400, alias="windowSeconds")
    horizon_s: Whole = Field(default=20, ge=1, le=86400, alias="horizonSeconds")
    quantile: Number = Field(default=0.5, gt=0, lt=1, description="quantile of the forecast peak that is planned for")


class Adaptation(_Model):
    interval_s: Number = Field(default=10.0, ge=1, le=3600, alias="intervalSeconds")
    scale_down_stabilisation_s: Number = Field(default=30.0, ge=0, le=86400, alias="scaleDownStabilizationSeconds")
    resize_policy: ResizePolicy = ResizePolicy.IN_PLACE_OR_RECREATE
    burst_replan: Flag = True


#: a Gateway API hostname: a DNS name, optionally with one leading wildcard label (RFC 1123, lower case)
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class Routing(_Model):
    kind: Literal["Envoy", "GatewayAPI"] = "Envoy"
    gateway_ref: str | None = None
    #: GatewayAPI: the HTTPRoute's hostnames (none: every hostname of the Gateway's listener); its path is
    #: always ``/v2/models/<modelName>``, so services with different model names never collide on one Gateway
    hostnames: list[
        Annotated[
            str, Field(max_length=253), AfterValidator(_pattern_check(_HOSTNAME, "a hostname", "use a DNS name, e.g. models.example.com or *.example.com"))
        ]
    ] = Field(default_factory=list, max_length=16)


class ShadowVariant(_Model):
    """One variant of the configuration a shadowed service runs now (cores per replica as a number)."""

    variant: str = Field(min_length=1, max_length=63)
    cpu: float = Field(gt=0, le=1024)
    replicas: Whole = Field(default=1, ge=1, le=1000)
    gpus: Whole = Field(default=0, ge=0, le=64)


class Shadow(_Model):
    """Recommend for a service the operator did not create: where its load is read and what it runs now."""

    #: PromQL whose value is the service's arrival rate in requests per second (several series are summed)
    load_query: str = Field(min_length=1, max_length=4096)
    current: list[ShadowVariant] = Field(min_length=1, max_length=64)


class InferenceServiceSpec(_Model):
    """The spec of an ``InferenceService`` (``infadapter.io/v1alpha1``)."""

    model_name: Annotated[str, AfterValidator(_pattern_check(_MODEL_NAME, "a model name", "use letters, digits, '_', '.', '-' (e.g. resnet)"))] = Field(
        default="model", min_length=1, max_length=63, description="public model name clients call"
    )
    variants: list[Variant] = Field(min_length=1, max_length=64)
    slo: Slo = Slo()
    objective: Objective = Objective()
    budget: Budget = Budget()
    resources: ResourceGrid = ResourceGrid()
    forecast: Forecast = Forecast()
    adaptation: Adaptation = Adaptation()
    mode: Mode = Mode.AUTO
    routing: Routing = Routing()
    #: named accelerator types beside the default GPU (``budget.gpu``): each with its count, price and nodes
    accelerators: list[Accelerator] = Field(default_factory=list, max_length=16)
    #: Recommend mode only: compare with a service that runs elsewhere (its load query and configuration)
    shadow: Shadow | None = None

    @model_validator(mode="after")
    def _accelerator_types(self) -> InferenceServiceSpec:
        declared = [a.name for a in self.accelerators]
        for i, name in enumerate(declared):
            if name in declared[:i] or name in (DEFAULT_ACCELERATOR, "cpu"):
                raise ValueError(f"accelerators[{i}].name {name!r} is used twice or reserved ('gpu' is budget.gpu's type); give each type its own name")
        for v in self.variants:
            unknown = sorted(set(v.accelerators or ()) - set(declared))
            if unknown:
                raise ValueError(f"variant {v.name!r} lists accelerator {unknown[0]!r}, which spec.accelerators does not declare; declare it or drop it")
        names = {v.name for v in self.variants}
        for v in self.variants:  # every type and batch, listed or not: the CRD's CEL rules check the same
            for a in ["", *(a.name for a in self.accelerators)]:
                for b in [0, *v.batch_sizes]:
                    if (a or b) and placement_name(v.name, a, b) in names:
                        raise ValueError(f"variant {placement_name(v.name, a, b)!r} has the name of one of {v.name}'s deployments; rename it")
        return self

    @property
    def placements(self) -> dict[str, Placement]:
        """Every deployment of the service by name: its variant, named accelerator type (or None) and batch.

        A variant's own deployment (CPU, or the default GPU) has the variant's name; each named
        accelerator type it may run on adds ``<variant>-<type>``, so one variant can serve from
        several kinds of hardware at once; each of its ``batchSizes`` adds ``<deployment>-b<n>`` beside
        each of those. Not cached: ``model_copy(update=...)`` would carry a cache over.
        """
        out: dict[str, Placement] = {v.name: Placement(v, None, 0) for v in self.variants}
        for v in self.variants:
            for a in self.accelerators:
                if v.accelerators is None or a.name in v.accelerators:
                    out.setdefault(placement_name(v.name, a.name), Placement(v, a, 0))
        for v in self.variants:
            for b in v.batch_sizes:
                for p in [p for p in out.values() if p.variant is v and not p.batch]:
                    out.setdefault(placement_name(v.name, p.accelerator.name if p.accelerator else "", b), Placement(v, p.accelerator, b))
        return out

    @property
    def units(self) -> list[Variant]:
        """Every deployment as a variant (one on a named type or batching carries its own name)."""
        return [p.variant if name == p.variant.name else p.variant.model_copy(update={"name": name}) for name, p in self.placements.items()]

    def placement(self, name: str) -> Placement | None:
        """The deployment ``name`` (None: not one of the service's)."""
        return self.placements.get(name)

    def accelerator(self, name: str) -> Accelerator | None:
        """The named accelerator type the deployment ``name`` runs on (None: CPU or the default GPU)."""
        placed = self.placement(name)
        return placed.accelerator if placed is not None else None

    def batch(self, name: str) -> int:
        """The largest batch the servers of deployment ``name`` form (0: they do not batch)."""
        placed = self.placement(name)
        return placed.batch if placed is not None else 0

    def prices(self, name: str) -> tuple[float, float]:
        """The deployment ``name``'s prices: per core and per device of its GPUs."""
        named = self.accelerator(name)
        return self.budget.cpu_price, named.price if named is not None else self.budget.gpu_price

    def base_variant(self, name: str) -> str:
        """The variant a deployment serves (its own name for a variant's own deployment)."""
        placed = self.placement(name)
        return placed.variant.name if placed is not None else name

    @model_validator(mode="after")
    def _shadowed(self) -> InferenceServiceSpec:
        if self.shadow is None:
            return self
        if self.mode != Mode.RECOMMEND:
            raise ValueError("shadow needs mode: Recommend (a shadowed service is not the operator's to change); set mode: Recommend")
        seen: set[str] = set()
        for i, running in enumerate(self.shadow.current):
            if running.variant not in self.variant_names:
                raise ValueError(f"shadow.current[{i}].variant {running.variant!r} is not a variant of the spec; use one of {', '.join(self.variant_names)}")
            if running.variant in seen:
                raise ValueError(f"shadow.current[{i}].variant {running.variant!r} appears twice; give each running variant once")
            seen.add(running.variant)
        return self

    @field_validator("variants")
    @classmethod
    def _unique_names(cls, variants: list[Variant]) -> list[Variant]:
        seen: dict[str, int] = {}
        for i, variant in enumerate(variants):
            if variant.name in seen:
                raise ValueError(f"variant name {variant.name!r} appears twice (entries [{seen[variant.name]}] and [{i}]); names must be unique")
            seen[variant.name] = i
        return variants

    def variant(self, name: str) -> Variant:
        """A variant, or a deployment of one on a named accelerator type (the variant, renamed)."""
        for v in self.variants:
            if v.name == name:
                return v
        placed = self.placement(name)
        if placed is None:
            raise KeyError(name)
        return placed.variant.model_copy(update={"name": name})

    @property
    def variant_names(self) -> list[str]:
        """Every deployment's name: the variants', then each ``<variant>-<type>``."""
        return list(self.placements)

    def to_dict(self) -> dict[str, Any]:
        """The spec as the CRD's camelCase dict (defaults included)."""
        return self.model_dump(mode="json", by_alias=True)


class Placement(NamedTuple):
    """One deployment of a variant: on its own hardware or a named accelerator type, batching or not."""

    variant: Variant
    accelerator: Accelerator | None
    batch: int


_KUBE_NAME = AfterValidator(_pattern_check(_SUBDOMAIN, "a Kubernetes name", "use lower-case letters, digits, '-' and '.' (e.g. resnet)"))
_KUBE_NAMESPACE = AfterValidator(_pattern_check(_NAME, "a namespace name", "use lower-case letters, digits and '-' (e.g. default)"))


class ServiceMeta(_Model):
    name: Annotated[str, _KUBE_NAME] = Field(default="default", min_length=1, max_length=253)
    namespace: Annotated[str, _KUBE_NAMESPACE] = Field(default="default", min_length=1, max_length=63)


class InferenceService(_Model):
    """A whole custom resource as a user would ``kubectl apply`` it."""

    api_version: str = Field(default=f"{API_GROUP}/{API_VERSION}", alias="apiVersion")
    kind: str = KIND
    metadata: ServiceMeta = ServiceMeta()
    spec: InferenceServiceSpec


def parse_spec(raw: Any, source: str = "spec") -> InferenceServiceSpec:
    """Validate a spec mapping (the CR's ``spec``), or raise :class:`InvalidSpec` with every error."""
    if not isinstance(raw, Mapping):
        raise InvalidSpec([FieldError("spec", f"expected a mapping, got {type(raw).__name__}", "write key: value pairs")], source)
    try:
        return InferenceServiceSpec.model_validate(dict(raw))
    except ValidationError as exc:
        raise InvalidSpec(errors_from_validation(exc, "spec"), source) from None


def parse_resource(raw: Any, source: str = "resource") -> InferenceService:
    """Validate a whole ``InferenceService`` object (``apiVersion``, ``kind``, ``metadata``, ``spec``)."""
    if not isinstance(raw, Mapping):
        raise InvalidSpec([FieldError("", f"expected a mapping, got {type(raw).__name__}", "write an InferenceService YAML object")], source)
    errors: list[FieldError] = []
    if raw.get("kind", KIND) != KIND:
        errors.append(FieldError("kind", f"expected {KIND!r}, got {raw.get('kind')!r}", f"set kind: {KIND}"))
    api = raw.get("apiVersion", f"{API_GROUP}/{API_VERSION}")
    if api != f"{API_GROUP}/{API_VERSION}":
        errors.append(FieldError("apiVersion", f"expected '{API_GROUP}/{API_VERSION}', got {api!r}", f"set apiVersion: {API_GROUP}/{API_VERSION}"))
    body = {k: v for k, v in raw.items() if k not in ("status",)}
    meta = body.get("metadata")
    if isinstance(meta, Mapping):  # keep what kubectl/kopf add; we only need name/namespace
        body["metadata"] = {k: meta[k] for k in ("name", "namespace") if k in meta}
    try:
        resource = InferenceService.model_validate(body)
    except ValidationError as exc:
        errors.extend(errors_from_validation(exc))
        raise InvalidSpec(errors, source) from None
    if errors:
        raise InvalidSpec(errors, source)
    return resource


def load_resource(path: str | Path) -> InferenceService:
    """Read a YAML file holding one ``InferenceService`` (a bare spec mapping is accepted too)."""
    file = Path(path)
    source = str(file)
    try:
        text = read_text(file)
    except OSError as exc:
        raise InvalidSpec([FieldError("", f"cannot read {file}: {exc.strerror or exc}", "check the path")], source) from None
    except UnicodeDecodeError as exc:
        raise InvalidSpec([FieldError("", f"{file} is not UTF-8 text (byte {exc.start})", "save the spec as UTF-8 YAML")], source) from None
    try:
        docs = yaml_documents(text)
    except yaml.YAMLError as exc:
        raise InvalidSpec([FieldError("", yaml_error_text(exc), "fix the YAML syntax")], source) from None
    services = [d for d in docs if isinstance(d, Mapping) and d.get("kind", KIND) == KIND]
    if not services:
        kinds = ", ".join(str(d.get("kind")) if isinstance(d, Mapping) else f"a {type(d).__name__}" for d in docs) or "nothing"
        raise InvalidSpec(
            [FieldError("", f"no InferenceService found in the file (it holds {kinds[:200]})", f"add a document with kind: {KIND}")],
            source,
        )
    if len(services) > 1:
        raise InvalidSpec(
            [FieldError("", f"the file holds {len(services)} InferenceService documents, expected one", "put each service in its own file")],
            source,
        )
    doc = services[0]
    if "spec" not in doc and "variants" in doc:
        doc = {"spec": doc}
    return parse_resource(doc, str(file))


def load_spec(path: str | Path) -> InferenceServiceSpec:
    return load_resource(path).spec
