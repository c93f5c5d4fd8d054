"""Load YAML a lawyer edits, validate it with pydantic, and point errors at file, line and field."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from incident.errors import BadInput
from incident.files import check_input

M = TypeVar("M", bound=BaseModel)
MAX_YAML_BYTES = 5_000_000
# No hand-edited or exported file nests deeper; the parsers recurse per level and would spend seconds and then
# overflow the stack on 100,000 opening brackets, so the depth is checked before they run.
MAX_DEPTH = 64
MAX_INT_DIGITS = sys.get_int_max_str_digits() or 4300
_TOKENS = re.compile(r"\\.|[\[\]{}\"'#\n]", re.DOTALL)
_INT_TAG = "tag:yaml.org,2002:int"


def too_deep(text: str, *, quotes: str = '"', limit: int = MAX_DEPTH) -> int | None:
    """Return the line where brackets outside strings nest deeper than `limit` (JSON, TOML, YAML flow), else None."""
    if text.count("[") + text.count("{") <= limit:
        return None  # the common case, decided without a scan
    depth, quote, comment, line = 0, "", False, 1
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token == "\n":
            line, comment = line + 1, False
        elif comment or token[0] == "\\":
            continue
        elif quote:
            quote = "" if token == quote else quote
        elif token in quotes:
            quote = token
        elif token == "#":
            comment = quotes != '"'  # JSON has no comments
        elif token in "[{":
            depth += 1
            if depth > limit:
                return line
        elif token in "]}":
            depth = max(0, depth - 1)
    return None


def no_duplicate_keys(on_duplicate: Callable[[str], Exception]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """A json object_pairs_hook that refuses a key given twice instead of silently keeping the last value."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    raise on_duplicate(key)
                seen.add(key)
        return obj

    return hook


def not_text(value: str) -> bool:
    """Whether a parsed string holds a lone surrogate (an escape like \\ud800), which no encoder accepts."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_nodes(name: str, root: yaml.Node) -> None:
    """Refuse duplicate keys, lone surrogates and over-long integers anywhere in a composed YAML tree."""
    stack = [root]
    while stack:
        node = stack.pop()
        line = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            if not_text(node.value):
                raise BadInput(name, line, None, "a lone surrogate escape (\\ud800 to \\udfff) is not text")
            if node.tag == _INT_TAG and len(node.value) > MAX_INT_DIGITS:
                raise BadInput(name, line, None, f"a number with more than {MAX_INT_DIGITS} digits")
        elif isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        raise BadInput(
                            name, key.start_mark.line + 1, key.value[:64], "duplicate key (refused, not overwritten)"
                        )
                    seen.add(key.value)
                stack += [key, value]
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value


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
    check_input(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(name, None, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise BadInput(name, None, None, exc.strerror or "cannot read") from None
    if len(text) > MAX_YAML_BYTES:
        raise BadInput(name, None, None, f"larger than {MAX_YAML_BYTES // 1_000_000} MB: not a hand-edited file")
    deep = too_deep(text, quotes="\"'")
    if deep is not None:
        raise BadInput(name, deep, None, f"nested deeper than {MAX_DEPTH} levels")
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            line = event.start_mark.line + 1 if event.start_mark else None
            if isinstance(event, yaml.AliasEvent):
                # Aliases let a few lines expand into billions of nodes; no lawyer-edited file needs them.
                raise BadInput(name, line, None, "YAML aliases (*name) are not allowed in these files")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise BadInput(name, line, None, f"nested deeper than {MAX_DEPTH} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            _check_nodes(name, root)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise BadInput(name, line, None, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise BadInput(name, None, None, f"invalid YAML: {exc}") from None
    except (ValueError, OverflowError, RecursionError) as exc:
        # A value the YAML constructors cannot build (a date out of range, a timestamp past year 9999).
        raise BadInput(name, None, None, f"invalid YAML value: {str(exc)[:120]}") from None
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
