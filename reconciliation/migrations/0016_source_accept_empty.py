from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("reconciliation", "0015_run_redrives_shard_conservation"),
    ]

    operations = [
        migrations.AddField(
            model_name="datasource",
            name="accept_empty",
            field=models.BooleanField(default=False),
        ),
    ]
