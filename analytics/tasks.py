"""Beat jobs of the analytics app: thin entry points around the services."""

from celery import shared_task

from analytics.gauges import gauges_refresh


# The registered name is the one the gauges job had in the monitoring app: beat rows created
# before the move (django-celery-beat stores the name) keep working.
@shared_task(name="monitoring.tasks.refresh_gauges", ignore_result=True)
def refresh_gauges() -> dict:
    return gauges_refresh()
