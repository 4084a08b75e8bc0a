from django.core.management.base import BaseCommand

from monitoring.schedule import schedule_install


class Command(BaseCommand):
    help = "Install or update the periodic jobs (SPEC §10) in django-celery-beat. Safe to run every start."

    def handle(self, *args, **options):
        result = schedule_install()
        if options["verbosity"] < 1:
            return
        for name, outcome in result.items():
            self.stdout.write(f"{outcome:>9}  {name}", self.style.SUCCESS if outcome != "unchanged" else None)
