"""The spec's field types and its resource sections (budget, accelerator types, the resource grid).

Split from :mod:`infadapter.spec`, which re-exports what callers use; the same rules: numbers are
numbers, CPU quantities are cores or millicores, names are checked with a hint.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from infadapter.hardware import DEFAULT_GPU_PRICE

_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m?)\s*$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: RFC 1123 subdomain (Kubernetes object names)
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
#: a Triton model name is a directory name and a URL path segment: no '/', quotes, spaces or '..'
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: Kubernetes memory quantity (binary or decimal suffix)
_MEMORY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")


#: the longest accelerator type name: a deployment ``<variant>-<type>-b<n>`` stays a DNS label (40 + 1 + 16 + 5)
ACCELERATOR_NAME_MAX = 16


def accelerator_name(value: str) -> bool:
    """Whether ``value`` can name an accelerator type: a DNS label of at most :data:`ACCELERATOR_NAME_MAX`."""
    return len(value) <= ACCELERATOR_NAME_MAX and _NAME.match(value) is not None


def placement_name(variant: str, accelerator: str, batch: int = 0) -> str:
    """The deployment of ``variant`` on the named accelerator type ``accelerator`` ("": its own hardware),
    its servers batching up to ``batch`` requests (0: no batching): ``resnet50``, ``resnet50-t4``,
    ``resnet50-b8``, ``resnet50-t4-b8``. At most 40 + 1 + 16 + 5 = 62 characters: a DNS label."""
    name = f"{variant}-{accelerator}" if accelerator else variant
    return f"{name}-b{batch}" if batch else name


def parse_cpu(value: Any) -> Any:
    """Accept cores as a number or a Kubernetes quantity (``"500m"``, ``"2"``)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a CPU quantity; write cores (1.5) or millicores ('1500m')")
    if isinstance(value, str):
        match = _QUANTITY.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a CPU quantity; write cores (1.5) or millicores ('1500m')")
        number = float(match.group(1))
        return number / 1000.0 if match.group(2) == "m" else number
    return value


Cores = Annotated[float, BeforeValidator(parse_cpu)]


def _plain_number(value: Any) -> Any:
    """Numbers are numbers, as the CRD's ``type: number`` says: not ``true``, not ``"2"``."""
    if isinstance(value, bool | str):
        raise ValueError(f"{value!r} is not a number; write a number without quotes (true/false are not numbers)")
    return value


def _plain_bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not true or false; write true or false without quotes")
    return value


Number = Annotated[float, BeforeValidator(_plain_number)]
Whole = Annotated[int, BeforeValidator(_plain_number)]
Flag = Annotated[bool, BeforeValidator(_plain_bool)]


def _pattern_check(pattern: re.Pattern[str], what: str, example: str) -> Any:
    """A validator that explains a regex mismatch as "problem; fix" (the parser splits the hint off)."""

    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value[:80]!r} is not {what}; {example}")
        return value

    return check


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
    )


class VariantResources(_Model):
    """Per-variant overrides of the resource grid."""

    min_cpu: Cores | None = Field(default=None, gt=0, alias="minCpu")
    max_cpu: Cores | None = Field(default=None, gt=0, alias="maxCpu")
    max_replicas: Whole | None = Field(default=None, ge=1, le=1000)
    min_replicas: Whole = Field(default=0, ge=0, le=1000)
    memory: str | None = Field(default=None, description="memory request = limit, a Kubernetes quantity")

    @field_validator("memory")
    @classmethod
    def _memory_quantity(cls, value: str | None) -> str | None:
        if value is not None and not _MEMORY.match(value):
            raise ValueError(f"{value[:80]!r} is not a memory quantity; write e.g. 512Mi or 2Gi")
        return value


_POOL_NAME = AfterValidator(_pattern_check(_SUBDOMAIN, "an InferenceBudget name", "use lower-case letters, digits, '-' and '.' (e.g. team-a)"))


class Budget(_Model):
    cpu: Cores = Field(default=20.0, gt=0, le=100_000)
    gpu: Whole = Field(default=0, ge=0, le=10_000)
    #: money-like prices (per hour, say): of a core and of a device of the default GPU type; a named
    #: accelerator type has its own (``accelerators[].price``). Only their ratios matter to the plan
    cpu_price: Number = Field(default=1.0, gt=0, le=1e6, alias="cpuPrice")
    gpu_price: Number = Field(default=DEFAULT_GPU_PRICE, gt=0, le=1e6, alias="gpuPrice")
    #: what a transition (make-before-break) may hold on top of the budget, as a fraction of it: a ResourceQuota
    #: for the service needs budget x (1 + surge)
    surge: float = Field(default=0.25, ge=0, le=1, allow_inf_nan=False)
    #: the name of an InferenceBudget in the service's namespace: the operator then plans the service within its
    #: share of that pool (``cpu`` and ``gpu`` above are not used), solved jointly with the pool's other members
    pool: Annotated[str, _POOL_NAME] | None = Field(default=None, min_length=1, max_length=253)


class Accelerator(_Model):
    """A named accelerator type of the cluster: how many the service may use, their price, where they are."""

    name: Annotated[str, AfterValidator(_pattern_check(_NAME, "an accelerator type name", "use lower-case letters, digits and '-' (e.g. t4)"))] = Field(
        min_length=1, max_length=ACCELERATOR_NAME_MAX
    )
    count: Whole = Field(ge=0, le=10_000, description="devices of this type in the budget")
    price: Number = Field(gt=0, le=1e6, description="price of one device, in the unit of budget.cpuPrice")
    #: the extended resource a pod requests for one device
    resource: str = Field(default="nvidia.com/gpu", min_length=1, max_length=253, pattern=r"^[a-z0-9.-]+/[a-zA-Z0-9._-]+$")
    #: labels of the nodes that hold this type (the pods' nodeSelector)
    node_selector: dict[str, Annotated[str, Field(max_length=63)]] = Field(default_factory=dict, max_length=16)


class ResourceGrid(_Model):
    """The resource options the solver may choose from, for every variant."""

    cpu_step: Cores = Field(default=1.0, gt=0, le=64, alias="cpuStep")
    min_cpu: Cores = Field(default=1.0, gt=0, le=1024, alias="minCpu")
    max_cpu: Cores = Field(default=20.0, gt=0, le=1024, alias="maxCpu")
    max_replicas: Whole = Field(default=1, ge=1, le=1000)
    gpus_per_replica: list[Annotated[Whole, Field(ge=1, le=64)]] = Field(default_factory=lambda: [1], max_length=16, alias="gpusPerReplica")

    @model_validator(mode="after")
    def _bounds(self) -> ResourceGrid:
        if self.min_cpu > self.max_cpu:
            raise ValueError(f"minCpu ({self.min_cpu}) is larger than maxCpu ({self.max_cpu}); swap them")
        return self
