from django.core.management.base import BaseCommand

from monitoring.schedule import schedule_install


class Command(BaseCommand):
    help = (
        "Repair tool: put every periodic job (SPEC §10) back to the code's task and timing, keeping each "
        "entry's enabled switch. Not needed at start: `migrate` creates missing jobs and keeps edits."
    )

    def handle(self, *args, **options):
        result = schedule_install()
        if options["verbosity"] < 1:
            return
        for name, outcome in result.items():
            self.stdout.write(f"{outcome:>9}  {name}", self.style.SUCCESS if outcome != "unchanged" else None)
