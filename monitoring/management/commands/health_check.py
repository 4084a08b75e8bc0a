import json

from django.core.management.base import BaseCommand, CommandError

from monitoring.health import UNHEALTHY, health_check_run


class Command(BaseCommand):
    help = (
        "Run the health checks now (what the beat job does), store the result for /health and print it. "
        "Exits with an error when the platform is unhealthy."
    )

    def handle(self, *args, **options):
        result = health_check_run()
        if options["verbosity"] >= 1:
            self.stdout.write(json.dumps(result, indent=2))
        if result["status"] == UNHEALTHY:
            raise CommandError(f"unhealthy: {', '.join(self._failing(result))}")

    @staticmethod
    def _failing(result: dict) -> list[str]:
        return [name for name, c in result["components"].items() if c["status"] == UNHEALTHY]
