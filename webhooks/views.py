"""Customer webhook pages: /account/webhooks/ — the endpoints with a form to add one (its signing
secret shown once, in the response that created it), an endpoint's recent deliveries, and delete
with a confirmation step. They call the same services and selectors as the API."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_http_methods

from webhooks import selectors, services
from webhooks.models import WebhookEndpoint
from webhooks.page_forms import DELIVERY_STATUS_LABELS, EVENT_LABELS, WebhookEndpointForm
from webhooks.urlsafety import UnsafeWebhookURL
from zenzefi.errors import ApplicationError
from zenzefi.page_errors import page_error_message

DELIVERIES_PAGE_SIZE = 20


def _events(endpoint: WebhookEndpoint) -> list[dict]:
    return [{"name": event, "label": EVENT_LABELS.get(event, event)} for event in endpoint.events or []]


def _list_page(
    request: HttpRequest, form: WebhookEndpointForm | None = None, status: int = 200
) -> HttpResponse:
    endpoints = list(selectors.webhook_endpoint_list(user=request.user))
    for endpoint in endpoints:
        endpoint.event_items = _events(endpoint)
    context = {"endpoints": endpoints, "form": form or WebhookEndpointForm()}
    return render(request, "webhooks/list.html", context, status=status)


def _unsafe_url_reason(exc: UnsafeWebhookURL) -> str:
    """Why the URL was refused, in the page's language (the service's `detail` is English)."""
    reasons = {
        "too_long": _("it must be an http(s) URL of at most 2000 characters."),
        "invalid": _("it is not a valid URL."),
        "scheme": _("only http and https URLs are allowed."),
        "no_host": _("a host is required."),
        "credentials": _("a user name or password in the URL is not allowed."),
    }
    if exc.reason in reasons:
        return reasons[exc.reason]
    if exc.reason == "unresolvable":
        return _("the host %(host)s cannot be resolved.") % {"host": exc.host}
    if exc.reason == "not_public":
        return _(
            "%(host)s resolves to a non-public address (%(kind)s: %(address)s); webhooks must reach "
            "a public address."
        ) % {"host": exc.host, "kind": exc.kind, "address": exc.address}
    return exc.detail.removeprefix("url: ")


def _add_service_error(form: WebhookEndpointForm, exc: ApplicationError) -> None:
    """Put a service refusal next to the field it is about."""
    if isinstance(exc, UnsafeWebhookURL):
        reason = _unsafe_url_reason(exc)
        form.add_error(
            "url",
            _("This URL cannot be used for webhooks: %(reason)s") % {"reason": reason},
        )
    elif exc.code == "invalid_events":
        form.add_error("events", exc.detail.removeprefix("events: "))
    elif exc.code == "too_many_webhooks":
        form.add_error(
            None,
            _("You can have at most %(limit)s webhook endpoints. Delete one to add another.")
            % {"limit": settings.WEBHOOK_MAX_ENDPOINTS_PER_USER},
        )
    else:
        form.add_error(None, page_error_message(exc))


@login_required
@never_cache
@sensitive_variables("created")
@require_http_methods(["GET", "POST"])
def webhook_list(request: HttpRequest) -> HttpResponse:
    """GET: the endpoints and the form to add one. POST: add it, and show its secret in this
    response only (never in a URL, the session, a message or a log)."""
    if request.method == "GET":
        return _list_page(request)
    form = WebhookEndpointForm(request.POST)
    if not form.is_valid():
        return _list_page(request, form, status=400)
    try:
        created = services.webhook_endpoint_create(
            user=request.user,
            url=form.cleaned_data["url"],
            events=form.cleaned_data["events"],
            request=request,
        )
    except ApplicationError as exc:
        _add_service_error(form, exc)
        return _list_page(request, form, status=exc.status_code)
    endpoint = created.endpoint
    endpoint.event_items = _events(endpoint)
    return render(request, "webhooks/created.html", {"endpoint": endpoint, "secret": created.secret})


def _own_endpoint(request: HttpRequest, endpoint_id: int) -> WebhookEndpoint:
    endpoint = selectors.webhook_endpoint_list(user=request.user).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise Http404
    endpoint.event_items = _events(endpoint)
    return endpoint


@login_required
@require_http_methods(["GET"])
def webhook_detail(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _own_endpoint(request, endpoint_id)
    deliveries = selectors.webhook_delivery_list(user=request.user, endpoint_id=endpoint.pk)
    page = Paginator(deliveries, DELIVERIES_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    for delivery in page.object_list:
        delivery.status_label = DELIVERY_STATUS_LABELS.get(delivery.status, delivery.status)
        delivery.event_label = EVENT_LABELS.get(delivery.event, delivery.event)
    return render(request, "webhooks/detail.html", {"endpoint": endpoint, "page": page})


@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def webhook_delete(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    """GET: the confirmation. POST: delete the endpoint (its delivery history goes with it)."""
    endpoint = _own_endpoint(request, endpoint_id)
    if request.method == "GET":
        return render(request, "webhooks/delete_confirm.html", {"endpoint": endpoint})
    try:
        services.webhook_endpoint_delete(user=request.user, endpoint_id=endpoint.pk, request=request)
    except ApplicationError as exc:
        messages.error(request, page_error_message(exc))
    else:
        messages.success(request, _("Webhook endpoint %(url)s deleted.") % {"url": endpoint.url})
    return redirect("webhooks:list")
