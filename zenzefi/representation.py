"""Read-only serializers on the hot path without DRF's per-request construction cost.

DRF builds a serializer's fields anew for every instance (a `ModelSerializer` derives each one
from the model field: labels, validators, translated messages), and `to_representation` walks
generic machinery per field and row. For `GET users/me` that construction was ~45 % of the
request's CPU, for `GET currency/transactions` (50 rows) the per-row walk ~45 %
(docs/performance.md "REST as deployed"). The output stays DRF's own: every value still goes
through its field's `to_representation` (the same decimal strings, date formats, slugs).

- `FlatReadMixin` (first base of a serializer): `to_representation` reads plain attributes with
  one `getattr` per field instead of DRF's generic `get_attribute` (dotted sources, callables,
  relations and nested serializers keep DRF's own path).
- `represent(SerializerClass, instance, many=False)`: the answer of `SerializerClass(instance,
  many=...).data` from one instance of the serializer per class and process, built once. Only for
  read-only serializers whose output does not depend on `context` (the shared instance has none)
  and whose methods keep no state; the request's language applies (translations are looked up
  when a value is rendered).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from rest_framework.fields import Field, SkipField
from rest_framework.relations import PKOnlyObject, RelatedField
from rest_framework.serializers import BaseSerializer

_shared: dict[tuple[type, bool], BaseSerializer] = {}
_lock = threading.Lock()


class FlatReadMixin:
    def _read_plan(self) -> list:
        plan = self.__dict__.get("_flat_read_plan")
        if plan is None:
            plan = []
            for field in self._readable_fields:
                attrs = field.source_attrs
                if not attrs:  # source="*": the instance itself
                    how = ""
                elif (
                    len(attrs) == 1
                    and not isinstance(field, (RelatedField, BaseSerializer))
                    and type(field).get_attribute is Field.get_attribute
                ):
                    how = attrs[0]
                else:
                    how = None  # DRF's own get_attribute
                plan.append((field.field_name, field, how))
            self.__dict__["_flat_read_plan"] = plan
        return plan

    def to_representation(self, instance):
        if isinstance(instance, Mapping):
            return super().to_representation(instance)
        ret = {}
        for name, field, how in self._read_plan():
            try:
                if how:
                    value = getattr(instance, how)
                    if callable(value):  # DRF calls simple callables: its own path
                        value = field.get_attribute(instance)
                elif how == "":
                    value = instance
                else:
                    value = field.get_attribute(instance)
            except AttributeError:
                try:
                    value = field.get_attribute(instance)  # defaults, allow_null, SkipField
                except SkipField:
                    continue
            except SkipField:
                continue
            if isinstance(value, PKOnlyObject):
                ret[name] = None if value.pk is None else field.to_representation(value)
            else:
                ret[name] = None if value is None else field.to_representation(value)
        return ret


def represent(serializer_class: type[BaseSerializer], instance, *, many: bool = False):
    """`serializer_class(instance, many=many).data` for a read-only, context-free serializer."""
    key = (serializer_class, many)
    serializer = _shared.get(key)
    if serializer is None:
        with _lock:
            serializer = _shared.get(key)
            if serializer is None:
                serializer = serializer_class(many=many)
                # Build (and bind) the fields now, once, not in a request's thread.
                (serializer.child if many else serializer).fields  # noqa: B018
                _shared[key] = serializer
    return serializer.to_representation(instance)
