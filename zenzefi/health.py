"""Liveness: answers at once without touching the database (detailed checks come with the jobs)."""

from django.http import JsonResponse
from django.views.decorators.cache import never_cache


@never_cache
def health(request):
    return JsonResponse({"status": "ok"})
