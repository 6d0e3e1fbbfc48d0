"""Binance spot's wire format without a network: signing, order parameters, statuses and refusals."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from apps.orders.domain.types import OrderStatus, OrderType, Reason, Side, TimeInForce
from apps.orders.services.live import binance_wire as wire
from apps.orders.services.live.errors import VenueProtocolError
from apps.orders.services.live.types import LiveOrder


def live_order(
    *,
    type: OrderType = OrderType.LIMIT,
    tif: TimeInForce = TimeInForce.GTC,
    price: str | None = "50000.10",
    quantity: str = "0.00100000",
) -> LiveOrder:
    return LiveOrder(
        order_id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        customer_id=1,
        client_order_id="alice-1",
        symbol="BTC-USDT",
        venue="binance",
        side=Side.BUY,
        type=type,
        time_in_force=tif,
        price=None if price is None else Decimal(price),
        quantity=Decimal(quantity),
    )


def test_signature_matches_binance_documented_example() -> None:
    # The HMAC example of Binance's "SIGNED endpoint" docs (api key vmPUZE6m..., secret NhqPtmdS...).
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    payload = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    )
    assert wire.sign(secret, payload) == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_signed_query_signs_exactly_what_it_sends() -> None:
    params = [("symbol", "LTCBTC"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC")]
    params += [("quantity", "1"), ("price", "0.1")]
    query = wire.signed_query(params, "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
                              timestamp_ms=1499827319559, recv_window_ms=5000)  # fmt: skip
    assert query.endswith("&signature=c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0.00100000", "0.001"),
        ("1E+2", "100"),
        ("50000.10", "50000.1"),
        ("7", "7"),
        ("0.000000000001", "0.000000000001"),
    ],
)
def test_decimals_go_out_as_plain_strings_without_exponent(value: str, text: str) -> None:
    assert wire.decimal_text(Decimal(value)) == text


def test_limit_gtc_parameters_carry_our_uuid_as_client_order_id() -> None:
    params = dict(wire.order_params(live_order(), "BTCUSDT") or [])
    assert params == {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "newClientOrderId": "12345678123456781234567812345678",
        "newOrderRespType": "FULL",
        "quantity": "0.001",
        "price": "50000.1",
        "type": "LIMIT",
        "timeInForce": "GTC",
    }


def test_post_only_is_limit_maker_without_time_in_force() -> None:
    params = dict(wire.order_params(live_order(tif=TimeInForce.POST_ONLY), "BTCUSDT") or [])
    assert params["type"] == "LIMIT_MAKER"
    assert "timeInForce" not in params


def test_market_order_sends_no_price_and_no_time_in_force() -> None:
    params = dict(wire.order_params(live_order(type=OrderType.MARKET, tif=TimeInForce.IOC, price=None), "X") or [])
    assert params["type"] == "MARKET"
    assert "price" not in params
    assert "timeInForce" not in params


@pytest.mark.parametrize("tif", [TimeInForce.FOK, TimeInForce.POST_ONLY])
def test_market_fok_and_post_only_are_not_offered(tif: TimeInForce) -> None:
    assert wire.order_params(live_order(type=OrderType.MARKET, tif=tif, price=None), "BTCUSDT") is None


@pytest.mark.parametrize(
    ("code", "message", "reason"),
    [
        (-2010, "Account has insufficient balance for requested action.", Reason.INSUFFICIENT_BALANCE),
        (-2010, "Order would immediately match and take.", Reason.POST_ONLY_WOULD_TAKE),
        (-1013, "Filter failure: LOT_SIZE", Reason.QUANTITY_OFF_GRID),
        (-1013, "Filter failure: PRICE_FILTER", Reason.PRICE_OFF_GRID),
        (-1013, "Filter failure: NOTIONAL", Reason.BELOW_MIN_NOTIONAL),
        (-1121, "Invalid symbol.", Reason.UNKNOWN_INSTRUMENT),
        (-2015, "Invalid API-key, IP, or permissions for action.", Reason.VENUE_AUTH_FAILED),
        (-1022, "Signature for this request is not valid.", Reason.VENUE_AUTH_FAILED),
        (-1015, "Too many new orders.", Reason.VENUE_UNAVAILABLE),
        (-2010, "Market is closed.", Reason.VENUE_REJECTED),
    ],
)
def test_binance_refusals_map_to_stable_reasons(code: int, message: str, reason: Reason) -> None:
    outcome = wire.rejected_outcome(wire.BinanceError(400, code, message))
    assert (outcome.status, outcome.reason, outcome.venue_code) == (OrderStatus.REJECTED, reason.value, code)


def body(status: str, executed: str = "0", quote: str = "0") -> dict[str, object]:
    return {"orderId": 7, "status": status, "executedQty": executed, "cummulativeQuoteQty": quote}


@pytest.mark.parametrize(
    ("status", "tif", "ours", "reason"),
    [
        ("NEW", TimeInForce.GTC, OrderStatus.NEW, ""),
        ("FILLED", TimeInForce.GTC, OrderStatus.FILLED, ""),
        ("CANCELED", TimeInForce.GTC, OrderStatus.CANCELED, Reason.CANCELED_BY_CUSTOMER.value),
        ("REJECTED", TimeInForce.GTC, OrderStatus.REJECTED, Reason.VENUE_REJECTED.value),
        ("EXPIRED", TimeInForce.IOC, OrderStatus.EXPIRED, Reason.IOC_REMAINDER.value),
        ("EXPIRED", TimeInForce.FOK, OrderStatus.EXPIRED, Reason.FOK_NOT_FILLABLE.value),
        ("EXPIRED", TimeInForce.GTC, OrderStatus.EXPIRED, Reason.VENUE_EXPIRED.value),
        ("EXPIRED_IN_MATCH", TimeInForce.GTC, OrderStatus.EXPIRED, Reason.SELF_TRADE_PREVENTED.value),
    ],
)
def test_binance_statuses_map_to_ours(status: str, tif: TimeInForce, ours: OrderStatus, reason: str) -> None:
    outcome = wire.order_outcome(live_order(tif=tif), body(status), ())
    assert (outcome.status, outcome.reason, outcome.venue_order_id) == (ours, reason, "7")


def test_partially_filled_reports_exact_average_price() -> None:
    outcome = wire.order_outcome(live_order(), body("PARTIALLY_FILLED", "0.3", "15000.03"), ())
    assert outcome.status == OrderStatus.PARTIALLY_FILLED
    assert outcome.filled_quantity == Decimal("0.3")
    assert outcome.average_price == Decimal("50000.100000000000")


def test_an_unknown_status_is_a_protocol_error_not_a_guess() -> None:
    with pytest.raises(VenueProtocolError):
        wire.order_outcome(live_order(), body("HALF_BAKED"), ())


def test_trades_become_fills_in_trade_order_with_maker_flag() -> None:
    trades = [
        {
            "id": 9,
            "price": "2",
            "qty": "1",
            "commission": "0.1",
            "commissionAsset": "USDT",
            "isMaker": False,
            "time": 2,
        },
        {
            "id": 8,
            "price": "1",
            "qty": "1",
            "commission": "0.05",
            "commissionAsset": "USDT",
            "isMaker": True,
            "time": 1,
        },
    ]
    fills, ids = wire.trade_fills(trades)
    assert ids == ("8", "9")
    assert [(f.price, f.liquidity, f.ts_ns) for f in fills] == [
        (Decimal(1), "maker", 1_000_000),
        (Decimal(2), "taker", 2_000_000),
    ]
