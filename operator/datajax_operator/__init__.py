"""datajax-operator: serves LLMs with vLLM on Cloud TPU and enforces a cost ceiling."""
