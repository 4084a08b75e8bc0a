"""JSON request bodies are held to the types the OpenAPI schema states (SPEC §13).

DRF coerces: `"24"` passes an IntegerField, `1` or `"yes"` a BooleanField, `123` a CharField and
`"1e3"` a DecimalField. A client generated from the schema never sends those, and the contract
says input the schema calls invalid is a 400: `StrictJSONMixin` refuses a JSON value whose type
differs from the one the schema gives its field. HTML form posts (the browsable API) send
strings for everything and are left to DRF's own coercion.

Decimals (amounts, percentages) are accepted as a decimal string (`"150.00"`, the pattern from
`decimal_pattern`) or a JSON number; zenzefi.schema documents exactly that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from django.http import QueryDict
from rest_framework import serializers


def decimal_pattern(field: serializers.DecimalField) -> str:
    """Digits, an optional sign (only if negatives are allowed) and at most `decimal_places`."""
    whole = (field.max_digits or 20) - (field.decimal_places or 0)
    sign = "" if field.min_value is not None and field.min_value >= 0 else "-?"
    fraction = rf"(\.\d{{1,{field.decimal_places}}})?" if field.decimal_places else ""
    return rf"^{sign}\d{{1,{whole}}}{fraction}$"


def _json_type_ok(field: serializers.Field, value) -> bool:
    if value is None:
        return True  # DRF answers for null itself (allow_null)
    if isinstance(field, serializers.BooleanField):
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if isinstance(field, serializers.IntegerField):
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(field, serializers.DecimalField):
        if isinstance(value, str):
            return re.fullmatch(decimal_pattern(field), value) is not None
        return isinstance(value, int | float)
    if isinstance(field, serializers.ListField):
        return isinstance(value, list)
    if isinstance(field, serializers.CharField | serializers.ChoiceField):
        return isinstance(value, str)
    if isinstance(field, serializers.Serializer):
        return isinstance(value, Mapping)
    return True


def _type_message(field: serializers.Field, value) -> str:
    """DRF's own message for the field (so answers read as before), formatted safely."""
    if isinstance(field, serializers.ListField):
        return str(field.error_messages["not_a_list"]).format(input_type=type(value).__name__)
    if isinstance(field, serializers.Serializer):
        return str(field.error_messages["invalid"]).format(datatype=type(value).__name__)
    if isinstance(field, serializers.ChoiceField):
        return str(field.error_messages["invalid_choice"]).format(input=value)
    message = field.error_messages.get("invalid")
    return str(message) if message else "Not a valid string."


class StrictJSONMixin:
    # Put first in a request serializer's bases: JSON values must have the schema's type.
    # (A comment, not a docstring: the schema would show it as every serializer's description.)

    def to_internal_value(self, data):
        if isinstance(data, Mapping) and not isinstance(data, QueryDict):
            errors = {}
            for name, field in self.fields.items():
                if field.read_only or field.source == "*" or name not in data:
                    continue
                if not _json_type_ok(field, data[name]):
                    errors[name] = [_type_message(field, data[name])]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)
