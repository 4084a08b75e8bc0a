"""Payment metrics."""

from prometheus_client import Counter

payment_callbacks_rejected_total = Counter(
    "payment_callbacks_rejected_total",
    "Payment callbacks refused (bad signature or id, unknown payment, provider off, rate limit)",
    ["provider", "reason"],
)
