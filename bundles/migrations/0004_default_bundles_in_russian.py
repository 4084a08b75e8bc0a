"""The four default bundles (0002) in Russian too. Only fills empty Russian texts of bundles that
still carry a default's English name, so staff edits are left alone."""

from django.db import migrations

RUSSIAN = {
    "Starter Pack": (
        "Стартовый набор",
        "Пять токенов на 24 часа со скидкой 10 %: попробуйте Zenzefi в течение рабочей недели.",
    ),
    "Pro Bundle": (
        "Профессиональный набор",
        "Десять токенов на 24 часа со скидкой 15 % — для регулярной работы.",
    ),
    "Ultimate Package": (
        "Максимальный пакет",
        "Двадцать токенов на неделю со скидкой 20 % — для мастерских и команд.",
    ),
    "Month Duo": (
        "Месяц на двоих",
        "Два токена на 30 дней со скидкой 15 %: месяц доступа для двух устройств.",
    ),
}


def fill_russian(apps, schema_editor):
    TokenBundle = apps.get_model("bundles", "TokenBundle")
    for bundle in TokenBundle.objects.filter(name__in=list(RUSSIAN)):
        name_ru, description_ru = RUSSIAN[bundle.name]
        changed = []
        if not bundle.name_ru:
            bundle.name_ru = name_ru
            changed.append("name_ru")
        if not bundle.description_ru:
            bundle.description_ru = description_ru
            changed.append("description_ru")
        if changed:
            bundle.save(update_fields=changed)


class Migration(migrations.Migration):
    dependencies = [("bundles", "0003_bundle_names_in_russian")]

    operations = [migrations.RunPython(fill_russian, migrations.RunPython.noop)]
