from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0013_match_run_brin"),
    ]

    operations = [
        migrations.AddField(
            model_name="datasource",
            name="accept_empty",
            field=models.BooleanField(default=False),
        ),
    ]
