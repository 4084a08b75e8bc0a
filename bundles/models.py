from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from bundles.pricing import MAX_TOKEN_COUNT, BundlePrices, bundle_prices, validate_bundle_values
from tokens.models import Scope
from zenzefi.errors import InvalidInput


class TokenBundle(models.Model):
    """A set of tokens sold together at a discount. Prices are derived, never stored: from
    `settings.TOKEN_PRICES`, `token_count` and `discount_percent` (see `bundles.pricing`)."""

    # `name`/`description` are the English texts (and `name` the bundle's unique identifier);
    # `*_ru` the Russian ones. Readers get `display_name`/`display_description`: their language's.
    name = models.CharField(_("name (English)"), max_length=100, unique=True)
    name_ru = models.CharField(_("name (Russian)"), max_length=100, blank=True, default="")
    description = models.TextField(_("description (English)"), blank=True, default="")
    description_ru = models.TextField(_("description (Russian)"), blank=True, default="")
    token_count = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TOKEN_COUNT)], verbose_name=_("token count")
    )
    duration_hours = models.PositiveIntegerField(
        help_text=_("A priced duration (a key of TOKEN_PRICES)."), verbose_name=_("duration, hours")
    )
    scope = models.CharField(
        max_length=32, choices=Scope.choices, default=Scope.FULL, verbose_name=_("scope")
    )
    discount_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        verbose_name=_("discount, %"),
    )
    is_active = models.BooleanField(default=True, db_index=True, verbose_name=_("active"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("token bundle")
        verbose_name_plural = _("token bundles")
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(token_count__gte=1, token_count__lte=MAX_TOKEN_COUNT),
                name="bundle_token_count_range",
            ),
            models.CheckConstraint(
                condition=models.Q(duration_hours__gte=1), name="bundle_duration_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(discount_percent__gte=0, discount_percent__lte=100),
                name="bundle_discount_range",
            ),
            models.CheckConstraint(condition=models.Q(scope__in=Scope.values), name="bundle_scope_valid"),
        ]

    def __str__(self) -> str:
        return self.display_name

    def _localized(self, field: str) -> str:
        language = (get_language() or "").split("-")[0]
        if language and language != "en":
            value = getattr(self, f"{field}_{language}", "")
            if value:
                return value
        return getattr(self, field)

    @property
    def display_name(self) -> str:
        """The name in the active language (English where no translation was written)."""
        return self._localized("name")

    @property
    def display_description(self) -> str:
        return self._localized("description")

    @property
    def prices(self) -> BundlePrices:
        return bundle_prices(
            token_count=self.token_count,
            duration_hours=self.duration_hours,
            discount_percent=self.discount_percent,
        )

    @property
    def base_price(self) -> Decimal:
        return self.prices.base_price

    @property
    def total_price(self) -> Decimal:
        return self.prices.total_price

    @property
    def savings(self) -> Decimal:
        return self.prices.savings

    @property
    def price_per_token(self) -> Decimal:
        return self.prices.price_per_token

    def clean(self) -> None:
        """The service's invariants, for model forms (the admin)."""
        super().clean()
        if None in (self.token_count, self.duration_hours, self.discount_percent) or not self.scope:
            return  # the field validators report the missing value
        try:
            validate_bundle_values(
                token_count=self.token_count,
                duration_hours=self.duration_hours,
                scope=self.scope,
                discount_percent=self.discount_percent,
            )
        except InvalidInput as exc:
            field, _, message = exc.detail.partition(": ")
            if field in ("token_count", "duration_hours", "scope", "discount_percent"):
                raise ValidationError({field: message}) from None
            raise ValidationError(exc.detail) from None
