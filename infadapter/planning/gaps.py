"""What the profile does not cover: GPU options that will not be offered, plan sizes it did not measure.

The commands print these as warnings: the plan is still made, but the user probably meant something else.
"""

from __future__ import annotations

from infadapter.planning.plan import Plan
from infadapter.profiles import Profile
from infadapter.spec import InferenceServiceSpec
from infadapter.spec_fields import placement_name


def gpu_warnings(spec: InferenceServiceSpec, profile: Profile) -> list[str]:
    """Why GPU options the spec or the profile suggest will not be offered (the user probably wants them)."""
    out: list[str] = []
    for i, v in enumerate(spec.variants):
        if v.name not in profile.points:
            continue
        measured = profile.gpu_counts(v.name)
        usable = sorted(set(spec.resources.gpus_per_replica) & set(measured))
        if not v.gpu:
            why, hint = "it does not have gpu: true", "set gpu: true and budget.gpu"
        elif spec.budget.gpu <= 0:
            why, hint = "spec.budget.gpu is 0", "set budget.gpu to the GPUs it may use"
        elif not measured:
            why, hint = "the profile has no GPU measurement of it", "profile it with gpus"
        elif not usable:
            why = f"spec.resources.gpusPerReplica {spec.resources.gpus_per_replica} has none of the profile's GPU counts {measured}"
            hint = "add one of them"
        else:
            continue
        where = f"spec.variants[{i}] ({v.name})"
        if not profile.runs_on_cpu(v.name):
            out.append(f"{where} was profiled only on GPUs and {why}, so it is never planned (hint: {hint})")
        elif v.gpu:
            out.append(f"{where} has gpu: true but {why}, so it runs on CPU only (hint: {hint})")
    return out + _accelerator_warnings(spec, profile)


def _accelerator_warnings(spec: InferenceServiceSpec, profile: Profile) -> list[str]:
    """Named accelerator types and batch sizes a variant lists that will not be offered: not measured, or none
    in the budget."""
    out: list[str] = []
    for i, v in enumerate(spec.variants):
        for b in v.batch_sizes:
            if not any(p.variant is v and p.batch == b and profile.measured(name) for name, p in spec.placements.items()):
                hint = f"profile it with maxBatchSize: {b}"
                out.append(f"spec.variants[{i}] ({v.name}) lists batch size {b}, but the profile has no point of it batching {b} (hint: {hint})")
        for name in v.accelerators or ():
            named = spec.accelerator(placement_name(v.name, name))
            where = f"spec.variants[{i}] ({v.name}) lists accelerator {name}"
            if not profile.measured(placement_name(v.name, name)):
                out.append(f"{where}, but the profile has no point of it on {name}, so it never runs there (hint: profile it with accelerator: {name})")
            elif named is not None and named.count == 0:
                out.append(f"{where}, but spec.accelerators gives {name} a count of 0 (hint: set its count)")
    return out


def unmeasured_sizes(plan: Plan, profile: Profile) -> list[str]:
    """The plan's sizes that lie outside what the profile measured (their capacity is an assumption)."""
    found = (profile.unmeasured(v.name, v.cpu_cores, v.gpus) for v in plan.variants if profile.measured(v.name))
    return [f"{why} (hint: profile that size)" for why in found if why is not None]
