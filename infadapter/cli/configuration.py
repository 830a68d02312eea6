"""A running configuration on the command line: ``VARIANT=CORES[xREPLICAS][:gpu=N],...``.

``plan --current`` (what runs now, which the transition term compares against) and ``simulate
--start-plan`` (what runs when the window begins) take it: ``resnet152=20`` (one replica of 20 cores),
``effnet-b3=8x4`` (four replicas of 8 cores), ``resnet50=2x3:gpu=1`` (three replicas of 2 cores and one
GPU each). Every part is checked against the spec and the profile, and every error is reported at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from infadapter.errors import FieldError, InvalidInput
from infadapter.planning import Plan, static_plan
from infadapter.profiles import Profile
from infadapter.spec import InferenceServiceSpec

SYNTAX = "VARIANT=CORES[xREPLICAS][:gpu=N]"
EXAMPLES = "e.g. resnet152=20, resnet50=2x3 or resnet50=2x3:gpu=1"
MAX_REPLICAS = 10_000


@dataclass(frozen=True)
class Size:
    """``replicas`` replicas of ``cores`` cores and ``gpus`` GPUs (None: not said) each."""

    cores: float
    replicas: int = 1
    gpus: int | None = None


def _parse_size(option: str, part: str, value: str, errors: list[FieldError]) -> Size | None:
    head, *extras = value.split(":")
    cores_text, _, replicas_text = head.partition("x")
    try:
        cores = float(cores_text)
    except ValueError:
        errors.append(FieldError(option, f"{part!r}: {cores_text!r} is not a number of cores", f"write {SYNTAX}, {EXAMPLES}"))
        return None
    if not (cores > 0 and math.isfinite(cores)):
        errors.append(FieldError(option, f"{part!r}: cores must be a finite number > 0, got {cores_text}", f"write {SYNTAX}, {EXAMPLES}"))
        return None
    replicas = 1
    if replicas_text:
        if not replicas_text.isdigit() or not 1 <= int(replicas_text) <= MAX_REPLICAS:
            errors.append(FieldError(option, f"{part!r}: replicas must be a whole number 1..{MAX_REPLICAS}, got {replicas_text!r}", EXAMPLES))
            return None
        replicas = int(replicas_text)
    gpus = None
    for extra in extras:
        key, _, number = extra.partition("=")
        if key.strip() not in ("gpu", "gpus") or not number.strip().isdigit() or int(number) > 64:
            errors.append(FieldError(option, f"{part!r}: {extra!r} is not gpu=N (N GPUs per replica, 0..64)", EXAMPLES))
            return None
        gpus = int(number)
    return Size(cores, replicas, gpus)


def parse_configuration(text: str, spec: InferenceServiceSpec, option: str) -> dict[str, Size]:
    """``{variant: Size}`` from ``text``; InvalidInput naming ``option`` with every bad part."""
    sizes: dict[str, Size] = {}
    errors: list[FieldError] = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        name, sep, value = (s.strip() for s in part.partition("="))
        if not sep:
            errors.append(FieldError(option, f"{part!r} is not {SYNTAX}", EXAMPLES))
        elif name not in spec.variant_names:
            errors.append(FieldError(option, f"unknown variant {name!r}", f"use one of {', '.join(spec.variant_names)}"))
        elif name in sizes:
            errors.append(FieldError(option, f"variant {name!r} is given twice", "give each variant once"))
        elif (size := _parse_size(option, part, value, errors)) is not None:
            sizes[name] = size
    if not sizes and not errors:
        errors.append(FieldError(option, "no variant given", f"write {SYNTAX}, {EXAMPLES}"))
    if errors:
        raise InvalidInput(errors, "arguments")
    return sizes


def configuration_plan(text: str, spec: InferenceServiceSpec, profile: Profile, option: str) -> Plan:
    """The plan ``text`` describes, routed most-accurate-first; its GPU counts must be measured in ``profile``."""
    sizes = parse_configuration(text, spec, option)
    errors: list[FieldError] = []
    for name, size in sizes.items():
        measured = profile.gpu_counts(name)
        if size.gpus and size.gpus not in measured:
            have = ", ".join(str(g) for g in measured) or "none"
            errors.append(
                FieldError(
                    option, f"{name} was not measured with {size.gpus} GPU(s) (the profile has: {have})", "profile that size, or give a measured GPU count"
                )
            )
        elif size.gpus == 0 and not profile.runs_on_cpu(name):
            errors.append(
                FieldError(
                    option, f"{name} was measured only with GPUs ({', '.join(str(g) for g in measured)})", f"write {name}={size.cores:g}:gpu={measured[0]}"
                )
            )
    if errors:
        raise InvalidInput(errors, "arguments")
    explicit = {n: s.gpus for n, s in sizes.items() if s.gpus is not None}
    return static_plan(spec, profile, {n: s.cores for n, s in sizes.items()}, replicas={n: s.replicas for n, s in sizes.items()}, gpus=explicit)
