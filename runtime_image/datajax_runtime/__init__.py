"""datajax_runtime: the serving-pod side of datajax-operator (metrics sidecar, plan bundle, vLLM plugin)."""
