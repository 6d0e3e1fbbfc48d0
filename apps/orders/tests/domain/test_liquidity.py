"""UsedLiquidity: paper takers do not take a level twice; a level the venue changes is whole again."""

from __future__ import annotations

from decimal import Decimal

from apps.orders.domain.liquidity import UsedLiquidity
from apps.orders.domain.matching import Match
from apps.orders.domain.types import Side

D = Decimal
ASKS = [(D(100), D(1)), (D(101), D(2))]


def test_what_a_taker_used_is_gone_for_the_next_one() -> None:
    used = UsedLiquidity()
    used.take(Side.SELL, ASKS, [Match(D(100), D(1), "taker"), Match(D(101), D("0.5"), "taker")])

    assert used.remaining(Side.SELL, ASKS) == [(D(101), D("1.5"))]  # 100 used up: left out; 2 - 0.5 at 101


def test_uses_add_up_while_the_level_shows_the_same_quantity() -> None:
    used = UsedLiquidity()
    used.take(Side.SELL, ASKS, [Match(D(101), D("0.5"), "taker")])
    used.take(Side.SELL, ASKS, [Match(D(101), D("0.5"), "taker")])

    assert used.remaining(Side.SELL, ASKS) == [(D(100), D(1)), (D(101), D(1))]


def test_a_level_shown_at_another_quantity_is_whole_again() -> None:
    used = UsedLiquidity()
    used.take(Side.SELL, ASKS, [Match(D(100), D(1), "taker")])

    moved = [(D(100), D(3)), (D(101), D(2))]
    assert used.remaining(Side.SELL, moved) == moved
    assert used.remaining(Side.SELL, ASKS) == ASKS  # forgotten, not revived when the old quantity comes back


def test_sides_and_maker_fills_are_kept_apart() -> None:
    used = UsedLiquidity()
    used.take(Side.BUY, [(D(100), D(1))], [Match(D(100), D(1), "taker")])
    used.take(Side.SELL, ASKS, [Match(D(100), D(1), "maker")])  # a resting order's fill: not a taker's use

    assert used.remaining(Side.SELL, ASKS) == ASKS
    assert used.remaining(Side.BUY, [(D(100), D(1))]) == []
