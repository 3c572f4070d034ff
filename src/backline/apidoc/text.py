"""Text in requests refuses NUL (see `backline.routing`): every string schema says so.

A pattern is added to each string of a request body or parameter that has no pattern, format
or fixed values of its own, and to the property names of each open object; responses, which
never carry NUL, are left as they are. What an open object takes besides its own properties is
any JSON without NUL.
"""

from __future__ import annotations

from typing import Any

NO_NUL = "^[^\\u0000]*$"
ANY_NAME = "JSONWithoutNUL"
ANY_REF = {"$ref": f"#/components/schemas/{ANY_NAME}"}
# What an open object takes under a name its schema does not list: any JSON without a NUL.
ANY: dict[str, Any] = {
    "description": "any JSON value without a NUL character in any string or name",
    "anyOf": [
        {"type": "string", "pattern": NO_NUL},
        {"type": ["number", "boolean", "null"]},
        {"type": "array", "items": ANY_REF},
        {"type": "object", "propertyNames": {"pattern": NO_NUL}, "additionalProperties": ANY_REF},
    ],
}
_FIXED = ("pattern", "format", "enum", "const", "contentMediaType")


def _mark(schema: Any, components: dict[str, Any], seen: set[str]) -> None:
    if isinstance(schema, list):
        for item in schema:
            _mark(item, components, seen)
        return
    if not isinstance(schema, dict):
        return
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[1]
        if name not in seen and name in components:
            seen.add(name)
            _mark(components[name], components, seen)
    types = schema.get("type")
    if (types == "string" or (isinstance(types, list) and "string" in types)) and not any(
        key in schema for key in _FIXED
    ):
        schema["pattern"] = NO_NUL
    if schema.get("type") == "object" and schema.get("additionalProperties", True) is True:
        schema["propertyNames"] = {"pattern": NO_NUL}  # names are text too
        schema["additionalProperties"] = ANY_REF
    for key, value in schema.items():
        if key in ("properties", "patternProperties", "$defs"):
            for sub in value.values():
                _mark(sub, components, seen)
        elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "not"):
            _mark(value, components, seen)


def refuse_nul(document: dict[str, Any]) -> None:
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components[ANY_NAME] = ANY
    seen: set[str] = set()
    for path in document.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                _mark(parameter.get("schema"), components, seen)
            for content in operation.get("requestBody", {}).get("content", {}).values():
                _mark(content.get("schema"), components, seen)
