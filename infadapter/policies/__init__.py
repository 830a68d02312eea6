"""The named adaptation policies (pure): what the operator, the embedded run and the simulator call.

``make_policy(name, spec, profile, **options)`` builds one of:

* ``static:<variant>@<cores>`` — one fixed plan;
* ``vpa:<variant>`` — the Kubernetes VPA recommender on one variant (research notes §8);
* ``msplus`` — the paper's MS+ baseline (best single variant, fewest sufficient cores; §8);
* ``infadapter-paper`` — the paper's adapter as its code ran (§2, §3, §5, §7);
* ``ours`` — the project's policy (calibrated forecast quantile, exact solver, burst re-plans, in place);
* ``oracle`` — exact plans for the true next-window peak (needs ``future_rps``);
* ``replay`` — the plans another run decided, at their times (needs ``schedule``; ``benchmarks/fidelity.py``).

Every policy has ``name``, ``interval_s``, ``first_tick_s``, ``initial_state()``,
``decide(obs, state) -> (Decision, state)``, ``between_ticks(obs, state) -> bool`` and
``state_from_dict(raw)``; static and VPA policies also have ``initial_plan()`` (what they start on).
"""

from __future__ import annotations

from typing import Any

from infadapter.errors import FieldError, InvalidInput
from infadapter.policies.base import Decision, Observation, Policy, Resize
from infadapter.policies.oracle import OraclePolicy
from infadapter.policies.ours import OursPolicy
from infadapter.policies.paper import PaperPolicy
from infadapter.policies.replay import ReplayPolicy
from infadapter.policies.static import StaticPolicy
from infadapter.policies.vpa import VpaPolicy
from infadapter.profiles import Profile
from infadapter.spec import Adaptation, Forecast, InferenceServiceSpec

#: the policy names (``vpa:`` and ``static:`` take a variant)
NAMES = ("ours", "infadapter-paper", "msplus", "oracle", "vpa:<variant>", "static:<variant>@<cores>")

__all__ = ["NAMES", "Decision", "Observation", "Policy", "Resize", "make_policy", "parse_policies", "recommended_options"]


def _bad(name: str, message: str, hint: str) -> InvalidInput:
    return InvalidInput([FieldError("policy", f"{name!r}: {message}", hint)], "policy")


def recommended_options() -> dict[str, Any]:
    """The project's default adaptation settings for ``ours`` (the spec's defaults).

    The simulator's paper scenario runs ``ours`` with these rather than the paper's 30 s / 4-decision
    settings that ``examples/resnet.yaml`` carries for the paper's own policies.
    """
    adaptation, forecast = Adaptation(), Forecast()
    return {
        "interval_s": adaptation.interval_s,
        "stabilisation_s": adaptation.scale_down_stabilisation_s,
        "quantile": forecast.quantile,
        "horizon_s": float(forecast.horizon_s),
    }


def make_policy(name: str, spec: InferenceServiceSpec, profile: Profile, **options: Any) -> Any:
    """Build the named policy; ``options`` go to its constructor (InvalidInput when wrong)."""
    try:
        if name == "ours":
            return OursPolicy(spec, profile, **options)
        if name == "oracle":
            if options.get("future_rps") is None:
                raise _bad(name, "the oracle needs the trace it runs on", "use it through `infadapter simulate`")
            return OraclePolicy(spec, profile, **options)
        if name == "replay":
            if not options.get("schedule"):
                raise _bad(name, "replay needs the plans it replays (schedule)", "use it through benchmarks/fidelity.py")
            return ReplayPolicy(**{"interval_s": spec.adaptation.interval_s, **options})
        if name in ("infadapter-paper", "msplus"):
            return PaperPolicy(spec, profile, single_variant=name == "msplus", **options)
        kind, _, rest = name.partition(":")
        if kind == "vpa" and rest:
            if rest not in spec.variant_names:
                raise _bad(name, f"unknown variant {rest!r}", f"one of {', '.join(spec.variant_names)}")
            return VpaPolicy(spec, profile, rest, **options)
        if kind == "static" and rest:
            variant, sep, cores = rest.partition("@")
            if not sep or variant not in spec.variant_names:
                raise _bad(name, "expected static:<variant>@<cores>", f"e.g. static:{spec.variant_names[-1]}@20")
            try:
                value = float(cores)
            except ValueError:
                raise _bad(name, f"{cores!r} is not a number of cores", "e.g. static:resnet50@8") from None
            if not value > 0:
                raise _bad(name, "cores must be > 0", "e.g. static:resnet50@8")
            return StaticPolicy(spec, profile, variant, value)
    except TypeError as exc:
        raise _bad(name, f"bad option: {exc}", "see the policy's docstring") from None
    raise _bad(name, "unknown policy", f"one of {', '.join(NAMES)}")


def parse_policies(text: str, spec: InferenceServiceSpec, profile: Profile | None = None) -> list[str]:
    """Expand a comma list; ``vpa`` alone means one VPA run per variant (that ``profile`` measured on CPU)."""
    names: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part in ("vpa", "vpa:*", "vpa:all"):
            names += [f"vpa:{v}" for v in spec.variant_names if profile is None or profile.runs_on_cpu(v)]
        else:
            names.append(part)
    return names
