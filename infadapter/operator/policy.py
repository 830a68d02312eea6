"""The operator's decision step: the named policy of :mod:`infadapter.policies` (``ours`` by default).

The operator runs the very policy code the simulator and the embedded mode run; its state is
checkpointed in the status by :mod:`infadapter.operator.tick`. An unknown name raises
:class:`~infadapter.errors.InvalidInput` (see :func:`infadapter.policies.make_policy`).
"""

from __future__ import annotations

from typing import Any

from infadapter.policies import Observation, Policy, make_policy
from infadapter.profiles import Profile
from infadapter.spec import InferenceServiceSpec

#: what the tick needs of a policy (kept as a name for the tick's annotations)
PolicyLike = Policy[Any]


def make(name: str, spec: InferenceServiceSpec, profile: Profile) -> tuple[PolicyLike, type[Observation]]:
    """(policy, the Observation class its ``decide`` takes) for ``name``."""
    policy: PolicyLike = make_policy(name, spec, profile)
    return policy, Observation
