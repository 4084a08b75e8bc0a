"""Beat jobs of the monitoring app: thin entry points around the services."""

from celery import shared_task

from monitoring.health import health_check_run


@shared_task(name="monitoring.tasks.run_health_checks", ignore_result=True)
def run_health_checks() -> str:
    return health_check_run()["status"]
