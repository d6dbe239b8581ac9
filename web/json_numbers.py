"""Numbers as the JSON API takes them: a JSON number, not `true` (which Litestar's lax
validation read as 1) nor a string (which it read as the number it spells)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError


def _json_number(value: Any) -> Any:
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    raise PydanticCustomError("number_type", "Input should be a number")


# Litestar validates with strict=False, which overrides a model's or a field's strict mode, so
# the check runs before pydantic's own.
JsonInt = Annotated[int, BeforeValidator(_json_number)]
JsonFloat = Annotated[float, BeforeValidator(_json_number)]
