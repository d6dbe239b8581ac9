"""Query parameters that a handler parses itself, described in the OpenAPI schema.

Some JSON API handlers take their query parameters from the request and validate them into a
pydantic model themselves, only once the caller may see the shop (so a stranger learns nothing
from a bad one). Litestar then knows nothing of those parameters; :func:`described_by` puts them
in the OpenAPI schema, described from the model, so the schema and the parsing cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.openapi.spec import OpenAPIType, Operation, Schema
from litestar.openapi.spec import Parameter as OpenAPIParameter
from pydantic import BaseModel


def described_by(model: type[BaseModel]) -> type[Operation]:
    """An ``operation_class`` for a route whose handler parses its query into ``model``: the
    route's operation, plus one optional query parameter per field of ``model``, with the
    field's description and schema."""

    @dataclass
    class DescribedOperation(Operation):
        def __post_init__(self) -> None:
            described = model.model_json_schema()["properties"]
            self.parameters = [
                *(self.parameters or []),
                *(
                    OpenAPIParameter(
                        name=name,
                        param_in="query",
                        required=False,
                        description=field.get("description"),
                        schema=_openapi_schema(field),
                    )
                    for name, field in described.items()
                ),
            ]

    DescribedOperation.__name__ = DescribedOperation.__qualname__ = f"{model.__name__}Operation"
    return DescribedOperation


def _openapi_schema(field: dict[str, Any]) -> Schema:
    """A flat pydantic field's JSON schema as OpenAPI's; an optional one's null is dropped,
    since an absent parameter says that."""
    (kind,) = [s for s in field.get("anyOf", [field]) if s.get("type") != "null"]
    return Schema(
        type=OpenAPIType(kind["type"]),
        format=kind.get("format"),
        enum=kind.get("enum"),
        minimum=kind.get("minimum"),
        maximum=kind.get("maximum"),
        max_length=kind.get("maxLength"),
        pattern=kind.get("pattern"),
        default=field.get("default"),
    )
