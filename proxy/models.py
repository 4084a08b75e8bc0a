from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ProxySession(models.Model):
    """One device's use of one token through the proxy, from its first request until it goes idle.

    Started (and a previous one ended) by `proxy.services.session_start`; the counters and
    `last_seen` accumulate in the shared key-value store on the hot path and are written here by
    `flush_proxy_counters`; `close_idle_sessions` sets `ended_at`. `key` is the session's id in the
    key-value store.
    """

    key = models.CharField(max_length=32, unique=True, editable=False, verbose_name=_("key"))
    token = models.ForeignKey(
        "tokens.AccessToken", on_delete=models.CASCADE, related_name="proxy_sessions", verbose_name=_("token")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="proxy_sessions",
        verbose_name=_("user"),
    )
    device_id = models.CharField(max_length=128, verbose_name=_("device ID"))
    ip = models.GenericIPAddressField(null=True, blank=True, verbose_name=_("IP address"))
    user_agent = models.CharField(max_length=512, blank=True, default="", verbose_name=_("user agent"))
    started_at = models.DateTimeField(verbose_name=_("started at"))
    last_seen = models.DateTimeField(verbose_name=_("last seen"))
    ended_at = models.DateTimeField(null=True, blank=True, verbose_name=_("ended at"))
    request_count = models.PositiveBigIntegerField(default=0, verbose_name=_("request count"))
    bytes_in = models.PositiveBigIntegerField(default=0, verbose_name=_("bytes in"))
    bytes_out = models.PositiveBigIntegerField(default=0, verbose_name=_("bytes out"))

    class Meta:
        verbose_name = _("proxy session")
        verbose_name_plural = _("proxy sessions")
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["token", "ended_at"]),
            models.Index(fields=["user", "started_at"]),
            models.Index(fields=["ended_at", "last_seen"]),
            models.Index(fields=["device_id"]),
            # Lists (newest first) and the traffic stats (index-only sums over a period).
            models.Index(
                fields=["started_at", "id"],
                include=["request_count", "bytes_in", "bytes_out"],
                name="session_started_cover_idx",
            ),
        ]

    def __str__(self) -> str:
        state = "open" if self.ended_at is None else "ended"
        return f"session {self.pk} token {self.token_id} device {self.device_id} ({state})"
