"""A SAR draft holds a description per "Other" suspicious activity subtype code (FinCEN's
OtherSuspiciousActivityTypeText). Existing filings get none: "Other" codes were refused until now."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('filings', '0007_ingestion_batches'),
    ]

    operations = [
        migrations.AddField(
            model_name='filing',
            name='activity_other_texts',
            field=models.JSONField(blank=True, default=dict, help_text='"Other" subtype code → its description (OtherSuspiciousActivityTypeText)'),
        ),
    ]
