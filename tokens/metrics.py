from prometheus_client import Counter

token_validations_total = Counter(
    "token_validations_total", "Access-token validations by outcome", ["status"]
)
token_purchases_total = Counter("token_purchases_total", "Access tokens sold", ["duration_hours"])
