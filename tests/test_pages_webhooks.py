"""Webhook pages: the list with the form to add an endpoint (its secret shown once), an endpoint's
recent deliveries, delete with a confirmation step; SSRF refusals as field errors."""

import html
import re
import time

import pytest
from django.contrib.messages import get_messages
from django.test import Client, override_settings
from django.utils import timezone

from audit.models import AuditLog
from tests.factories import UserFactory
from webhooks import services, signing
from webhooks.models import EVENTS, DeliveryStatus, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db

LIST = "/account/webhooks/"
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
PUBLIC_URL = "http://93.184.216.34/hooks/zenzefi"  # an IP literal: resolves without DNS


@pytest.fixture
def user(db):
    return UserFactory(language="en")


@pytest.fixture
def client(user):
    client = Client(**EN)
    client.force_login(user)
    return client


def text(response) -> str:
    return response.content.decode()


def shown_secret(response) -> str:
    return re.search(r'data-testid="webhook-secret"[^>]*>([^<]+)</textarea>', text(response)).group(1)


def add(user, url=PUBLIC_URL, events=("token.purchased",)) -> WebhookEndpoint:
    return services.webhook_endpoint_create(user=user, url=url, events=list(events)).endpoint


def delivery(endpoint, **fields) -> WebhookDelivery:
    defaults = {"event": "token.purchased", "event_id": "msg_test", "payload": {"type": "token.purchased"}}
    return WebhookDelivery.objects.create(endpoint=endpoint, **{**defaults, **fields})


# --- Access ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [LIST, "/account/webhooks/1/", "/account/webhooks/1/delete/"])
def test_anonymous_visitors_are_sent_to_the_login(path):
    client = Client(**EN)
    for response in (client.get(path), client.post(path, {"url": PUBLIC_URL, "events": ["balance.low"]})):
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={path}"
    assert WebhookEndpoint.objects.count() == 0


def test_changes_are_post_only(client, user):
    endpoint = add(user)
    assert client.put(LIST).status_code == 405
    assert client.post(f"/account/webhooks/{endpoint.pk}/").status_code == 405
    assert client.delete(f"/account/webhooks/{endpoint.pk}/delete/").status_code == 405
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_another_users_endpoint_is_not_found(client, user):
    other = UserFactory()
    foreign = add(other, url="http://93.184.216.34/other-secret-path")
    delivery(foreign, event_id="msg_foreign")
    for path in (f"/account/webhooks/{foreign.pk}/", f"/account/webhooks/{foreign.pk}/delete/"):
        assert client.get(path).status_code == 404
    assert client.post(f"/account/webhooks/{foreign.pk}/delete/").status_code == 404
    assert WebhookEndpoint.objects.filter(pk=foreign.pk).exists()
    assert "other-secret-path" not in text(client.get(LIST))
    assert client.get("/account/webhooks/999999/").status_code == 404


# --- List and create -------------------------------------------------------------------------


def test_empty_list_shows_the_form_with_every_event_and_how_to_verify(client):
    response = client.get(LIST)
    body = text(response)
    assert response.status_code == 200
    assert "You have no webhook endpoints yet." in body
    assert 'name="url"' in body and 'type="url"' in body
    for event in EVENTS:
        assert f'name="events" value="{event}"' in body
    assert "A token was bought (token.purchased)" in body
    for header in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        assert f"<code>{header}</code>" in body
    assert "<code>v1,</code>" in body and "HMAC-SHA256" in body and "whsec_" in body


def test_list_shows_own_endpoints_with_links(client, user):
    endpoint = add(user, events=["token.expiring", "balance.low"])
    body = text(client.get(LIST))
    assert f'data-endpoint-id="{endpoint.pk}"' in body and PUBLIC_URL in body
    assert "<code" in body and ">token.expiring</code>" in body and ">balance.low</code>" in body
    assert f'href="/account/webhooks/{endpoint.pk}/"' in body
    assert f'href="/account/webhooks/{endpoint.pk}/delete/"' in body
    assert "Active" in body


def test_create_shows_the_secret_once(client, user):
    response = client.post(LIST, {"url": PUBLIC_URL, "events": ["token.purchased", "token.expired"]})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"] and "Location" not in response
    body = text(response)
    assert "this is the only time it is shown" in body
    assert 'data-copy-target="webhook-secret"' in body and "<noscript>" in body
    secret = shown_secret(response)
    endpoint = WebhookEndpoint.objects.get(user=user)
    assert endpoint.url == PUBLIC_URL and endpoint.events == ["token.purchased", "token.expired"]
    assert secret.startswith("whsec_") and secret == signing.endpoint_secret(endpoint)
    assert 'id="verify"' in body  # how to check the signatures, next to the secret

    # The shown secret verifies what the deliveries send.
    headers = signing.signature_headers(
        secret=signing.secret_key_bytes(uid=endpoint.uid, salt=endpoint.secret_salt),
        msg_id="msg_1",
        body=b'{"type":"token.purchased"}',
    )
    assert signing.verify(
        secret=secret, headers=headers, body=b'{"type":"token.purchased"}', now=int(time.time())
    )

    # Never again: not on a later page, not in the session, messages or the audit trail.
    for path in (
        LIST,
        f"/account/webhooks/{endpoint.pk}/",
        f"/account/webhooks/{endpoint.pk}/delete/",
        "/account/",
    ):
        page = client.get(path)
        assert page.status_code == 200, path
        assert secret not in text(page) and secret[6:] not in text(page), path
    assert secret not in str(dict(client.session.items()))
    assert not list(get_messages(response.wsgi_request))
    assert not any(secret in str(entry.details) for entry in AuditLog.objects.all())
    assert AuditLog.objects.filter(action="webhook.create", resource_id=str(endpoint.pk)).exists()


def test_ssrf_refusal_is_a_url_field_error_and_creates_nothing(client, user):
    with override_settings(WEBHOOK_ALLOWED_HOSTS=[]):
        response = client.post(LIST, {"url": "http://127.0.0.1/hook", "events": ["token.purchased"]})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == ["url"] and "loopback" in errors["url"][0]
    assert re.search(
        r'<input type="url" name="url" value="http://127.0.0.1/hook"[^>]*aria-invalid="true"', text(response)
    )
    assert re.search(
        r'<small class="field-error" role="alert">This URL cannot be used for webhooks: ', text(response)
    )
    assert WebhookEndpoint.objects.count() == 0
    assert not AuditLog.objects.filter(action="webhook.create").exists()
    assert "whsec_" not in re.sub(r"<article id=\"verify\">.*?</article>", "", text(response), flags=re.S)


def test_an_allowed_internal_host_is_accepted(client, user):
    with override_settings(WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"]):
        response = client.post(LIST, {"url": "http://127.0.0.1/hook", "events": ["balance.low"]})
    assert response.status_code == 200 and shown_secret(response).startswith("whsec_")
    assert WebhookEndpoint.objects.get(user=user).url == "http://127.0.0.1/hook"


@pytest.mark.parametrize(
    "data,field",
    [
        ({"url": PUBLIC_URL}, "events"),
        ({"url": PUBLIC_URL, "events": ["token.stolen"]}, "events"),
        ({"url": "not a url", "events": ["balance.low"]}, "url"),
        ({"url": "", "events": ["balance.low"]}, "url"),
        ({"url": "ftp://93.184.216.34/x", "events": ["balance.low"]}, "url"),
    ],
)
def test_bad_input_is_a_field_error_and_creates_nothing(client, data, field):
    response = client.post(LIST, data)
    assert response.status_code == 400 and field in response.context["form"].errors
    assert 'class="field-error"' in text(response)
    assert WebhookEndpoint.objects.count() == 0


def test_the_endpoint_limit_is_a_form_error(client, user):
    add(user)
    with override_settings(WEBHOOK_MAX_ENDPOINTS_PER_USER=1):
        response = client.post(LIST, {"url": PUBLIC_URL, "events": ["balance.low"]})
    assert response.status_code == 409
    assert "You can have at most 1 webhook endpoints." in text(response)
    assert WebhookEndpoint.objects.filter(user=user).count() == 1


def test_the_pages_python_example_verifies_a_real_signature(client, user):
    response = client.post(LIST, {"url": PUBLIC_URL, "events": ["balance.low"]})
    secret = shown_secret(response)
    example = html.unescape(re.search(r"<pre><code>(.*?)</code></pre>", text(response), re.S).group(1))
    namespace = {}
    exec(example, namespace)  # noqa: S102 - our own page's sample code
    endpoint = WebhookEndpoint.objects.get(user=user)
    body = b'{"type":"balance.low"}'
    key = signing.secret_key_bytes(uid=endpoint.uid, salt=endpoint.secret_salt)
    headers = signing.signature_headers(secret=key, msg_id="msg_1", body=body)
    assert namespace["verify"](secret, headers, body) is True
    assert namespace["verify"](secret, headers, body + b" ") is False


# --- Detail ----------------------------------------------------------------------------------


def test_detail_shows_recent_deliveries(client, user):
    endpoint = add(user, events=["token.purchased", "token.revoked"])
    delivery(endpoint, event_id="msg_ok", status=DeliveryStatus.SUCCEEDED, attempts=1, last_status_code=204)
    delivery(
        endpoint,
        event="token.revoked",
        event_id="msg_retry",
        status=DeliveryStatus.RETRYING,
        attempts=2,
        last_status_code=500,
        last_response="<b>boom</b>",
    )
    delivery(
        endpoint,
        event_id="msg_down",
        status=DeliveryStatus.FAILED,
        attempts=8,
        last_error="ConnectError: refused",
    )
    other = add(UserFactory())
    delivery(other, event_id="msg_someone_else")
    body = text(client.get(f"/account/webhooks/{endpoint.pk}/"))
    assert PUBLIC_URL in body and "A token was revoked" in body
    assert "msg_ok" in body and "Delivered" in body and "HTTP 204" in body
    assert "msg_retry" in body and "Waiting to retry" in body and "&lt;b&gt;boom&lt;/b&gt;" in body
    assert "msg_down" in body and "Failed" in body and "ConnectError: refused" in body
    assert "msg_someone_else" not in body
    assert body.index("msg_down") < body.index("msg_ok")  # newest first


def test_detail_pages_deliveries(client, user):
    endpoint = add(user)
    for number in range(25):
        delivery(endpoint, event_id=f"msg_{number}")
    first = client.get(f"/account/webhooks/{endpoint.pk}/")
    assert len(first.context["page"].object_list) == 20 and "Page 1 of 2" in text(first)
    second = client.get(f"/account/webhooks/{endpoint.pk}/", {"page": 2})
    assert len(second.context["page"].object_list) == 5


def test_detail_shows_a_failing_endpoint(client, user):
    endpoint = add(user)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        failing_since=timezone.now(), consecutive_failures=3
    )
    body = text(client.get(f"/account/webhooks/{endpoint.pk}/"))
    assert "Failing" in body and "(3 failed attempts in a row)" in body


def test_detail_without_deliveries_and_a_disabled_endpoint(client, user):
    endpoint = add(user)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=False)
    body = text(client.get(f"/account/webhooks/{endpoint.pk}/"))
    assert "No deliveries yet." in body and "Disabled" in body


# --- Delete ----------------------------------------------------------------------------------


def test_delete_asks_first_then_deletes(client, user):
    endpoint = add(user)
    delivery(endpoint)
    path = f"/account/webhooks/{endpoint.pk}/delete/"
    confirm = client.get(path)
    assert confirm.status_code == 200 and "Delete this webhook endpoint?" in text(confirm)
    assert f'<form method="post" action="{path}"' in text(confirm)
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()  # GET changes nothing
    response = client.post(path)
    assert response.status_code == 302 and response["Location"] == LIST
    assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()
    assert WebhookDelivery.objects.count() == 0
    assert AuditLog.objects.filter(action="webhook.delete", resource_id=str(endpoint.pk)).exists()
    page = text(client.get(LIST))
    assert f"Webhook endpoint {PUBLIC_URL} deleted." in page and "You have no webhook endpoints yet." in page
    assert client.post(path).status_code == 404  # already gone


# --- CSRF, language, no JavaScript -----------------------------------------------------------


def test_forms_enforce_csrf(user):
    endpoint = add(user)
    client = Client(enforce_csrf_checks=True, **EN)
    client.force_login(user)
    assert client.post(LIST, {"url": "http://93.184.216.35/x", "events": ["balance.low"]}).status_code == 403
    assert client.post(f"/account/webhooks/{endpoint.pk}/delete/").status_code == 403
    assert list(WebhookEndpoint.objects.values_list("pk", flat=True)) == [endpoint.pk]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', text(client.get(LIST))).group(1)
    response = client.post(f"/account/webhooks/{endpoint.pk}/delete/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302 and WebhookEndpoint.objects.count() == 0


def test_english_page_and_navigation_link(user):
    client = Client(**EN)
    client.force_login(user)
    body = text(client.get(LIST))
    assert '<html lang="en">' in body and "<h1>Webhooks</h1>" in body and "Add an endpoint" in body
    assert '<a href="/account/webhooks/">Webhooks</a>' in text(client.get("/account/"))


def test_russian_user_gets_the_russian_page(db):
    client = Client(**EN)
    client.force_login(UserFactory(language="ru"))
    assert '<html lang="ru">' in text(client.get(LIST))


def test_pages_need_no_javascript_and_post_forms_carry_csrf(client, user):
    endpoint = add(user)
    for path in (LIST, f"/account/webhooks/{endpoint.pk}/", f"/account/webhooks/{endpoint.pk}/delete/"):
        body = text(client.get(path))
        assert re.findall(r"<script[^>]*>", body) == ['<script src="/static/js/pages.js" defer>'], path
        assert " onclick=" not in body and "javascript:" not in body
        for form in re.findall(r"<form[^>]*>.*?</form>", body, flags=re.S):
            if 'method="post"' in form:
                assert 'name="csrfmiddlewaretoken"' in form, form[:200]
