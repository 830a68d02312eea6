"""The local actuator of the embedded mode: Triton, Envoy and Prometheus as child processes of this machine.

It imports nothing of :mod:`infadapter.runtime.kube`; what both actuators share is the pure
:mod:`infadapter.runtime.envoy_config`.
"""
