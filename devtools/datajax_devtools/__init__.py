"""Development tools of datajax-operator: the local demo (`make run`), the local control plane the tests
and the demo run, and the vLLM traffic simulator. A distribution of its own (devtools/pyproject.toml),
installed for development and CI only: neither the operator image nor the runtime image ships it."""
