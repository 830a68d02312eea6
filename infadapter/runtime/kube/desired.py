"""Every Kubernetes object of one InferenceService, built from its spec and its sizes (pure).

Per service ``S`` (all labelled ``app.kubernetes.io/managed-by: infadapter`` and ``infadapter.io/service: S``,
all owned by the custom resource through a controller ``ownerReference``, so deleting it removes them):

* ``S-<variant>``: a Triton ``Deployment`` (requests = limits from the plan on every container, init
  containers included, so the pod is Guaranteed; ``nvidia.com/gpu`` when the plan gives GPUs; rolling
  update with ``maxUnavailable: 0`` = make-before-break; ``resizePolicy`` NotRequired so CPU changes in
  place) and a headless ``Service`` (the router resolves every ready pod and balances per request);
  variants outside the plan keep their Deployment at 0 replicas, so the router config never changes;
* ``S-router``: an Envoy ``Deployment`` (two replicas) + ``Service`` + ``ConfigMap`` + (optionally)
  ``PodDisruptionBudget``, ``S-servers`` (a headless Service over every server of the service: the
  router's fallback), and ``S-router-weights`` (integer weights per variant) — see
  :mod:`infadapter.runtime.kube.router`;
* with ``routing.kind: GatewayAPI``, an ``HTTPRoute`` with weighted ``backendRefs`` instead of the router.
"""

from __future__ import annotations

from collections.abc import Mapping

from infadapter.runtime.kube import router
from infadapter.runtime.kube.objects import Images, Obj, Owner
from infadapter.runtime.kube.servers import servers_service, variant_deployment, variant_service
from infadapter.spec import InferenceServiceSpec


def desired_objects(
    owner: Owner,
    spec: InferenceServiceSpec,
    sizes: Mapping[str, tuple[float, int, int]],
    weights: Mapping[str, int],
    images: Images,
    *,
    disruption_budget: bool = False,
) -> list[Obj]:
    """Everything the service needs: ``sizes`` = {variant: (cpu cores, gpus, replicas)} for every variant.

    ``disruption_budget``: include the router's ``PodDisruptionBudget`` (``policy/v1``; the applier and the
    operator's RBAC must know the kind).
    """
    objects: list[Obj] = []
    for variant in spec.units:
        cpu, gpus, replicas = sizes[variant.name]
        objects.append(variant_deployment(owner, spec, variant, cpu_cores=cpu, gpus=gpus, replicas=replicas, images=images))
        objects.append(variant_service(owner, variant.name))
    if spec.routing.kind == "GatewayAPI":
        objects.append(router.http_route(owner, spec, weights))
    else:
        objects += [
            servers_service(owner),
            router.router_configmap(owner, spec),
            router.weights_configmap(owner, weights),
            router.router_deployment(owner, spec, images),
            router.router_service(owner),
        ]
        if disruption_budget:
            objects.append(router.router_disruption_budget(owner))
    return objects
