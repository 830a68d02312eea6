"""The Kubernetes operator: kopf handlers (``handlers``) over a tick made of separate steps (``tick``).

Only :mod:`infadapter.operator.handlers` imports kopf; run it with ``infadapter operator``.
"""
