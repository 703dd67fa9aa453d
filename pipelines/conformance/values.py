"""Parameter values as the KFP driver sees them (``protobuf.Value`` kinds), and its type rule.

:func:`accept` is ``handleParamTypeValidationAndConversion`` of
``backend/src/v2/driver/resolve.go``: a STRING input takes any value, converted to text
(``metadata.PbValueToText``, ``backend/src/v2/metadata/converter.go``); NUMBER_INTEGER and
NUMBER_DOUBLE need a number, BOOLEAN a bool, LIST a list, STRUCT (and the task status and
config types) a struct; a string reaching any other type is a type mismatch, and null is
refused unless the driver itself set it for an optional input without a default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

RESOLVE = "backend/src/v2/driver/resolve.go"
CONVERT = f"{RESOLVE}: handleParamTypeValidationAndConversion"
UNSET: Any = object()  # a literal the simulation does not know (only its kind)

# parameterType -> the kind of protobuf.Value it takes (resolve.go's type switch).
ACCEPTS = {
    "STRING": "string",
    "NUMBER_INTEGER": "number",
    "NUMBER_DOUBLE": "number",
    "BOOLEAN": "bool",
    "LIST": "list",
    "STRUCT": "struct",
    "TASK_FINAL_STATUS": "struct",
    "TASK_CONFIG": "struct",
}


@dataclass(frozen=True)
class Value:
    """A protobuf.Value as the simulation knows it: its kind, where it came from, maybe itself.

    ``kind`` is one of string, number, bool, list, struct, null, any (unknown), oneof
    (one of ``options``: a ``dsl.OneOf`` output).
    """

    kind: str
    origin: str
    literal: Any = UNSET
    options: tuple[Value, ...] = ()
    nil_by_driver: bool = False  # a DAG driver's null for an optional input without default

    @classmethod
    def of(cls, literal: Any, origin: str) -> Value:
        return cls(kind_of(literal), origin, literal)

    @classmethod
    def declared(cls, parameter_type: str, origin: str) -> Value:
        return cls(ACCEPTS.get(parameter_type, "any"), origin)

    def what(self) -> str:
        """The value alone: ``string "0"``, ``a number``."""
        if self.kind == "oneof":
            return " or ".join(option.what() for option in self.options)
        if self.literal is UNSET:
            return "a value" if self.kind == "any" else f"a {self.kind}"
        return "null" if self.literal is None else f"{self.kind} {json.dumps(self.literal)}"

    def describe(self) -> str:
        """The value and where it comes from."""
        if self.kind == "oneof":
            return " or ".join(option.describe() for option in self.options)
        return f"{self.what()} ({self.origin})"


def kind_of(literal: Any) -> str:
    if literal is None:
        return "null"
    if isinstance(literal, bool):
        return "bool"
    if isinstance(literal, int | float):
        return "number"
    if isinstance(literal, str):
        return "string"
    return "list" if isinstance(literal, list) else "struct"


def as_text(literal: Any) -> str:
    """``metadata.PbValueToText`` (``backend/src/v2/metadata/converter.go``)."""
    if literal is None:
        return ""
    if isinstance(literal, bool):
        return "true" if literal else "false"
    if isinstance(literal, int | float):
        return str(int(literal)) if float(literal).is_integer() and abs(literal) < 1e15 else repr(literal)
    if isinstance(literal, str):
        return literal
    return json.dumps(literal, separators=(",", ":"))


def accept(value: Value, spec: Mapping[str, Any], name: str, where: str) -> tuple[Value | None, str]:
    """What input `name` (declared by `spec`) holds after the driver's check: (value, "") or
    (None, the driver's error)."""
    declared = str(spec.get("parameterType", "PARAMETER_TYPE_ENUM_UNSPECIFIED"))
    if value.kind == "oneof":
        results = [accept(option, spec, name, where) for option in value.options]
        errors = [error for _, error in results if error]
        if errors:
            return None, errors[0]
        return replace(value, options=tuple(v for v, _ in results if v is not None)), ""
    if declared == "STRING":
        if value.kind == "string" or (value.kind == "null" and value.nil_by_driver):
            return value, ""
        text = UNSET if value.literal is UNSET else as_text(value.literal)
        origin = f"{value.origin}; {value.what()} converted to text by {where}"
        return Value("string", origin, text), ""
    if value.kind == "any":
        return value, ""
    if value.kind == "null":
        if value.nil_by_driver:
            return value, ""
        return None, f'got null for input parameter "{name}"'
    if ACCEPTS.get(declared) != value.kind:
        return None, f'input parameter "{name}" type mismatch: expect {declared}, got {value.kind}'
    return value, ""
