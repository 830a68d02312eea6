"""InfAdapter: variant selection, sizing and traffic split for ML inference under a latency SLO."""

__version__ = "0.1.0"
