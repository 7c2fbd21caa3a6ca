"""How much a validated claim pays: a fixed amount per model, or a percentage of the price
capped per currency. Decimal throughout; amounts are rounded half-up to cents.

An amount that cannot be computed (no price, a currency the campaign does not pay in)
is not an error but a reason for a human to look (the claim goes to review).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from mailbot.core.campaign import Campaign, PayoutKind

CENT = Decimal("0.01")


@dataclass(frozen=True)
class PayoutResult:
    amount: Decimal | None
    currency: str | None
    reasons: tuple[str, ...] = ()
    """Why there is no amount: currency_unknown, currency_not_supported, price_unknown,
    price_invalid, no_fixed_amount. Empty when `amount` is set."""
    capped: bool = False
    uncapped: Decimal | None = None
    """For percentages: the amount before the cap (evidence)."""


def claim_currency(campaign: Campaign, currency: str | None) -> str | None:
    # A single-currency campaign needs no currency on the claim.
    if currency:
        return currency.upper()
    if len(campaign.currencies) == 1:
        return campaign.currencies[0]
    return None


def compute_payout(
    campaign: Campaign, model: str, currency: str | None, price: Decimal | None
) -> PayoutResult:
    cur = claim_currency(campaign, currency)
    if cur is None:
        return PayoutResult(None, None, ("currency_unknown",))
    if cur not in campaign.currencies:
        return PayoutResult(None, cur, ("currency_not_supported",))
    pay = campaign.payout
    if pay.kind is PayoutKind.FIXED:
        amount = pay.fixed_amount(model, cur)
        if amount is None:
            return PayoutResult(None, cur, ("no_fixed_amount",))
        return PayoutResult(amount.quantize(CENT, ROUND_HALF_UP), cur)
    if price is None:
        return PayoutResult(None, cur, ("price_unknown",))
    if not price.is_finite() or price <= 0:
        return PayoutResult(None, cur, ("price_invalid",))
    cap = pay.cap(cur)
    if cap is None or pay.percent is None:
        return PayoutResult(None, cur, ("currency_not_supported",))
    raw = (price * pay.percent / Decimal(100)).quantize(CENT, ROUND_HALF_UP)
    if raw > cap:
        return PayoutResult(cap.quantize(CENT, ROUND_HALF_UP), cur, capped=True, uncapped=raw)
    return PayoutResult(raw, cur, uncapped=raw)
