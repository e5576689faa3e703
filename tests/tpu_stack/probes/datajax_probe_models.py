"""Model classes for the plugin probe: two that tpu-inference accepts, three it refuses."""

from typing import Any


class GoodModel:
    def __init__(self, vllm_config: Any, rng: Any = None, mesh: Any = None) -> None:
        self.config = vllm_config

    def __call__(self, kv_caches: Any, input_ids: Any, attention_metadata: Any, *args: Any) -> Any:
        return kv_caches, input_ids


class KwargsModel:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def __call__(self, **kwargs: Any) -> Any:
        return kwargs


class NoConfigModel:
    def __init__(self, config: Any) -> None:
        self.config = config

    def __call__(self, kv_caches: Any, input_ids: Any, attention_metadata: Any) -> Any:
        return None


class NoCallModel:
    def __init__(self, vllm_config: Any) -> None:
        self.config = vllm_config


class PartialCallModel:
    def __init__(self, vllm_config: Any) -> None:
        self.config = vllm_config

    def __call__(self, input_ids: Any) -> Any:
        return input_ids
