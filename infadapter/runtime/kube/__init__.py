"""The Kubernetes actuator of the operator: pure object builders, the REST client, apply and in-place resize.

It imports nothing of :mod:`infadapter.runtime.local`; what both actuators share is the pure
:mod:`infadapter.runtime.envoy_config`.
"""
