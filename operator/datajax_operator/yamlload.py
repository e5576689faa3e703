"""Loading a YAML document a user wrote, with the expansion of aliases bounded.

``yaml.safe_load`` constructs no arbitrary objects, but it keeps aliases as shared references: a
"billion laughs" document of a few hundred bytes loads in microseconds into a graph that expands to
billions of values the moment anything walks it (validation, rendering, printing), exhausting memory.
The loaded document is walked here once, counting every value as often as aliases repeat it, and
refused past a budget no real manifest comes near.
"""

from typing import Final

import yaml

MAX_VALUES: Final = 200_000
"""Values (mappings, sequences, scalars, keys) in the expanded document; a DataJaxModel has ~100."""


class DocumentTooLarge(yaml.YAMLError):
    """The document expands beyond ``MAX_VALUES`` (aliases repeated over and over)."""


def load_bounded(text: str, max_values: int = MAX_VALUES) -> object:
    """``yaml.safe_load`` of one document, refused when its expansion exceeds ``max_values``."""
    document: object = yaml.safe_load(text)
    remaining = max_values
    stack = [document]
    while stack:
        node = stack.pop()
        remaining -= 1
        if remaining < 0:
            raise DocumentTooLarge(
                f"the document expands to more than {max_values} values: refused (YAML aliases repeating "
                "one another, a 'billion laughs'?)"
            )
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return document
