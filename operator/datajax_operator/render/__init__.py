"""Pure renderers: a plan in, the Kubernetes manifests of the model's children out."""

from datajax_operator.render.names import base_name, common_labels, selector_labels
from datajax_operator.render.objects import SPEC_HASH_ANNOTATION, render_objects, spec_hash

__all__ = [
    "SPEC_HASH_ANNOTATION",
    "base_name",
    "common_labels",
    "render_objects",
    "selector_labels",
    "spec_hash",
]
