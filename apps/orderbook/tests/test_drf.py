"""`validated` and `release_serializer`: the same data as DRF's own calls, and no reference cycles left."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from apps.orderbook.drf import release_serializer, validated


class LegSerializer(serializers.Serializer):
    price = serializers.DecimalField(max_digits=20, decimal_places=8)
    size = serializers.DecimalField(max_digits=20, decimal_places=8)


class OrderSerializer(serializers.Serializer):
    pair = serializers.CharField(max_length=20)
    legs = LegSerializer(many=True)
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    meta = serializers.DictField(child=serializers.IntegerField(), required=False)


BODY = {"pair": "BTC-USDT", "legs": [{"price": "65000.1", "size": "0.5"}], "tags": ["a"], "meta": {"x": "1"}}


def cyclic_garbage(make: Callable[[], Any]) -> list[str]:
    make()  # warm: imports and caches
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        make()
        gc.collect()
        return [type(o).__qualname__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def test_validated_gives_what_drf_validates() -> None:
    plain = OrderSerializer(data=BODY)
    assert plain.is_valid()
    assert validated(OrderSerializer(data=BODY)) == plain.validated_data


def test_invalid_input_raises_drfs_validation_error_with_the_field_errors() -> None:
    with pytest.raises(ValidationError) as raised:
        validated(OrderSerializer(data={**BODY, "legs": [{"price": "x", "size": "1"}]}))
    assert "legs" in raised.value.detail


def test_a_used_serializer_is_a_reference_cycle_until_released() -> None:
    def used(*, release: bool) -> None:
        serializer = OrderSerializer(data=BODY)
        serializer.is_valid(raise_exception=True)
        assert serializer.data["pair"] == "BTC-USDT"  # output too: `data` links back to its serializer
        if release:
            release_serializer(serializer)

    assert cyclic_garbage(lambda: used(release=False))  # the premise: DRF leaves cycles
    assert cyclic_garbage(lambda: used(release=True)) == []
    assert cyclic_garbage(lambda: validated(OrderSerializer(data=BODY))) == []


def test_refused_input_leaves_no_cycle_either() -> None:
    def refused() -> None:
        with pytest.raises(ValidationError):
            validated(OrderSerializer(data={**BODY, "tags": "not a list"}))

    assert cyclic_garbage(refused) == []
