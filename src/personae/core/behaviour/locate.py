"""Lines for the behaviour section of a YAML file, from PyYAML's composed nodes (safe loading:
``compose`` builds nodes and constructs no objects), and the keys it repeats, which
``safe_load`` silently collapses to the last one."""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from personae.core.behaviour.validate import Path


@dataclass(slots=True)
class Locations:
    lines: dict[Path, int] = field(default_factory=dict)  # 1-based
    duplicates: list[Path] = field(default_factory=list)

    def line(self, path: Path) -> int | None:
        # The nearest located ancestor: a path to a value that is not written (a default).
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)


def yaml_locations(text: str, section: str = "behaviour") -> Locations:
    """Where each part of the top-level ``section`` is written; empty when there is none or
    the text is not YAML (``safe_load`` reports that)."""
    found = Locations()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return found
    if not isinstance(root, yaml.MappingNode):
        return found
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == section:
            found.lines[()] = key.start_mark.line + 1
            _walk(value, (), found)
    return found


def _walk(node: yaml.Node, path: Path, found: Locations) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark)
            child = (*path, name)
            if name in seen:
                found.duplicates.append(child)
            seen.add(name)
            found.lines[child] = key.start_mark.line + 1
            _walk(value, child, found)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            found.lines[child] = item.start_mark.line + 1
            _walk(item, child, found)
