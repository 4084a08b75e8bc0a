"""Language selection for pages and the REST API (one LocaleMiddleware subclass).

Pages: the signed-in user's saved `language`, then Django's usual order (the language cookie
set by the switcher, then `Accept-Language`), then `LANGUAGE_CODE` (Russian).
REST API (`/api/…`): the `Accept-Language` header when it names a language we speak, otherwise
English, so API clients that send no header get English messages (DRF's own included).
"""

from __future__ import annotations

from django.contrib.auth.middleware import get_user
from django.middleware.locale import LocaleMiddleware
from django.utils import translation
from django.utils.translation.trans_real import parse_accept_lang_header

API_PREFIX = "/api/"
API_DEFAULT_LANGUAGE = "en"


def _supported(code: str | None) -> str | None:
    if not code:
        return None
    try:
        return translation.get_supported_language_variant(code)
    except LookupError:
        return None


def api_language(request) -> str:
    """The first supported language of `Accept-Language`, else English."""
    for code, _quality in parse_accept_lang_header(request.META.get("HTTP_ACCEPT_LANGUAGE", "")):
        if code != "*" and (language := _supported(code)):
            return language
    return API_DEFAULT_LANGUAGE


def user_language(request) -> str | None:
    """The saved preference of the user signed in through the session (None when anonymous).

    `get_user` is the loader AuthenticationMiddleware uses later: it caches the user on the
    request, so the session user is loaded from the database once per request."""
    if not hasattr(request, "session"):
        return None
    user = get_user(request)
    if not getattr(user, "is_authenticated", False):
        return None
    return _supported(getattr(user, "language", None))


class ZenzefiLocaleMiddleware(LocaleMiddleware):
    def process_request(self, request):
        if request.path_info.startswith(API_PREFIX):
            language = api_language(request)
        else:
            language = user_language(request)
            if language is None:
                return super().process_request(request)
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
