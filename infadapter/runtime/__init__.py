"""Actuators: make a Plan real (local processes in the embedded mode, Kubernetes objects in the operator)."""
