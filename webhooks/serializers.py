from rest_framework import serializers

from webhooks.models import EVENTS, WebhookEndpoint
from zenzefi.fields import StrictJSONMixin


class WebhookEndpointCreateSerializer(StrictJSONMixin, serializers.Serializer):
    url = serializers.CharField(max_length=2000, help_text="http(s) URL reaching a public address.")
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENTS), allow_empty=False, min_length=1
    )


class WebhookEndpointSerializer(serializers.ModelSerializer):
    """An endpoint as listed: the secret is never part of it."""

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "events",
            "is_active",
            "created_at",
            "last_success_at",
            "last_failure_at",
            "failing_since",
            "consecutive_failures",
            "disabled_at",
            "disabled_reason",
        ]
        read_only_fields = fields


class CreatedWebhookEndpointSerializer(WebhookEndpointSerializer):
    """The creation answer: the only time the `secret` is shown."""

    secret = serializers.SerializerMethodField()

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields

    def get_secret(self, obj) -> str:
        return self.context["secret"]
