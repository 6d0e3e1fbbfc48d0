"""DRF helpers shared by the apps' REST views (microstructure and orders may import orderbook).

A DRF serializer and its fields point at each other: `serializer.fields` is a `BindingDict` that holds the
serializer, each field's `parent` is the serializer, and a list field holds its `child` whose `parent` is
the list. A serializer left as it is after a request is therefore a reference cycle, freed only when the
garbage collector runs (which stops the process while it walks every tracked object). Releasing it once its
data is taken lets reference counting free it as the request ends.
"""

from __future__ import annotations

from typing import Any, cast

from rest_framework.fields import Field
from rest_framework.serializers import BaseSerializer


def validated(serializer: BaseSerializer[Any]) -> dict[str, Any]:
    """The serializer's validated data, its cycles released; invalid input raises ValidationError (a 400),
    and is released too (the error's detail keeps the serializer, not its fields)."""
    try:
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = serializer.validated_data
    finally:
        release_serializer(serializer)
    return data


def release_serializer(node: Field[Any, Any, Any, Any]) -> None:
    """Cut the back-references in a serializer's field tree; the serializer is not to be used afterwards.

    Input already validated (`validated_data`) and output already produced (`data`) are plain values and
    stay as they are; `data`'s own link back to its serializer is cut too.
    """
    attributes = node.__dict__
    fields = attributes.pop("fields", None)  # a Serializer's BindingDict (a cached property), which holds it
    if fields is not None:
        for field in fields.values():
            release_serializer(field)
    for name in ("child", "child_relation"):  # ListSerializer, ListField, DictField; ManyRelatedField
        child = attributes.get(name)
        if isinstance(child, Field):
            cast(Any, child).parent = None  # typed as always bound; released, it is bound to nothing
            release_serializer(child)
    data: Any = attributes.get("_data")
    if data is not None and getattr(data, "serializer", None) is node:  # ReturnDict / ReturnList(serializer=self)
        data.serializer = None
