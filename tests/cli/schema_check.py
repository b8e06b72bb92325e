"""A validator for the JSON Schema subset src/driveferry/events.schema.json uses ($ref to local
pointers, oneOf, const, enum, type, properties, required, additionalProperties, items, minimum), so
the tests need no jsonschema package. `errors(instance, schema, root)` lists every violation."""

from __future__ import annotations

from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {"object": (dict,), "array": (list,), "string": (str,),
                                       "integer": (int,), "number": (int, float), "boolean": (bool,),
                                       "null": (type(None),)}
_KNOWN = {"$schema", "$id", "$defs", "$ref", "title", "description", "oneOf", "const", "enum", "type",
          "properties", "required", "additionalProperties", "items", "minimum"}


def resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/"), ref
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    return dict(node)


def _is_type(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name not in ("boolean",):
        return False
    return isinstance(value, _TYPES[name])


def errors(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "$") -> list[str]:
    unknown = set(schema) - _KNOWN
    assert not unknown, f"schema keyword(s) this validator does not know: {unknown}"
    if "$ref" in schema:
        return errors(value, resolve(root, schema["$ref"]), root, where)
    out: list[str] = []
    if "oneOf" in schema:
        matches = [s for s in schema["oneOf"] if not errors(value, s, root, where)]
        if len(matches) != 1:
            out.append(f"{where}: matches {len(matches)} of the oneOf shapes, not exactly one")
    if "const" in schema and value != schema["const"]:
        out.append(f"{where}: {value!r} is not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, n) for n in names):
            return [*out, f"{where}: {value!r} is not of type {names}"]
    if "minimum" in schema and isinstance(value, int | float) and value < schema["minimum"]:
        out.append(f"{where}: {value} < {schema['minimum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out += [f"{where}: missing {k!r}" for k in schema.get("required", []) if k not in value]
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                out += errors(v, props[k], root, f"{where}.{k}")
            elif extra is False:
                out.append(f"{where}: unexpected key {k!r}")
            elif isinstance(extra, dict):
                out += errors(v, extra, root, f"{where}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            out += errors(v, schema["items"], root, f"{where}[{i}]")
    return out
