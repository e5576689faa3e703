"""The smallest kopf operator that settles a DataJaxModel: it writes ``status.observedGeneration``.

    python tests/bench/minimal_kopf.py --namespace NS --liveness-port PORT   (KUBECONFIG from the env)

It is the benchmark's "framework floor": the same kopf, the same operator settings
(``datajax_operator.runner.settings``: annotation persistence, posting level) and the same watch of one
namespace as ``datajax-operator run``, with no planning, no children and no reads. The gap between it
and the real operator is what the reconcile itself costs.
"""

from __future__ import annotations

import argparse
from typing import Any

import kopf

from datajax_operator.runner import Options, settings

GROUP, VERSION, PLURAL = "datajax.dev", "v1alpha1", "datajaxmodels"


def build_registry() -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    async def created(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        patch.status["observedGeneration"] = body.metadata.get("generation")

    return registry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--liveness-port", type=int, required=True)
    args = parser.parse_args(argv)
    kopf.configure(log_format=kopf.LogFormat.JSON)  # as `datajax-operator run --log-format json`
    kopf.run(
        registry=build_registry(),
        settings=settings(Options()),
        standalone=True,
        namespaces=[args.namespace],
        liveness_endpoint=f"http://127.0.0.1:{args.liveness_port}/healthz",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
