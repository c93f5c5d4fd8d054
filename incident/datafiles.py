"""Load YAML a lawyer edits, validate it with pydantic, and point errors at file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from incident.errors import BadInput

M = TypeVar("M", bound=BaseModel)
MAX_YAML_BYTES = 5_000_000


def _node_at(node: yaml.Node, loc: tuple[Any, ...]) -> yaml.Node:
    """Walk a composed YAML node tree along a pydantic error location, as far as it goes."""
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if match is None:
                key = next((k for k, _ in node.value if getattr(k, "value", None) == part), None)
                return key if key is not None else node
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
    return node


def load_yaml(path: Path, model: type[M]) -> M:
    """Parse `path` safely (no object-building tags) and validate it as `model`."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(name, None, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise BadInput(name, None, None, exc.strerror or "cannot read") from None
    if len(text) > MAX_YAML_BYTES:
        raise BadInput(name, None, None, f"larger than {MAX_YAML_BYTES // 1_000_000} MB: not a hand-edited file")
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                # Aliases let a few lines expand into billions of nodes; no lawyer-edited file needs them.
                line = event.start_mark.line + 1 if event.start_mark else None
                raise BadInput(name, line, None, "YAML aliases (*name) are not allowed in these files")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise BadInput(name, line, None, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise BadInput(name, None, None, f"invalid YAML: {exc}") from None
    if root is None:
        raise BadInput(name, 1, None, "the file is empty")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        node = _node_at(root, loc)
        field = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        raise BadInput(name, node.start_mark.line + 1, field, msg) from None
