"""Regulatory filings (FinCEN CTR first): the tenant's filing configuration, the data filings are
prepared from (versioned parties, cash transactions), filings with their versions and lineage,
write-once packages and FinCEN's acknowledgements. Written only by ``filings.services``.

docs/filings.md explains the decisions (threshold, aggregation, rate source, four eyes, gate).
"""

from django.db import models
from django.db.models import Q

from jfintech.tenancy.models import TenantOwned

# --- tenant configuration (admin and apply_config) --------------------------------------------


class FilingInstitution(TenantOwned):
    """The filing institution (party 30), its contact office (8), transmitter (35) and transmitter
    contact (37): one per tenant. Also the readiness-gate threshold."""

    name = models.CharField(max_length=150)
    ein = models.CharField(max_length=9, help_text="EIN, 9 digits")
    rssd = models.CharField(max_length=10, blank=True, help_text="RSSD number (identification type 14)")
    regulator_code = models.CharField(
        max_length=2, default="4", help_text="PrimaryRegulatorTypeCode (4 = OCC)"
    )
    organization_type = models.CharField(max_length=3, default="2", help_text="2 = depository institution")
    street = models.CharField(max_length=100)
    city = models.CharField(max_length=50)
    state = models.CharField(max_length=3)
    zip_code = models.CharField(max_length=9)
    country = models.CharField(max_length=2, default="US")
    contact_office = models.CharField(max_length=150)
    contact_phone = models.CharField(max_length=16)
    transmitter_name = models.CharField(max_length=150)
    transmitter_tin = models.CharField(max_length=9)
    transmitter_tcc = models.CharField(max_length=8, help_text="Transmitter Control Code (starts with P)")
    transmitter_phone = models.CharField(max_length=16)
    transmitter_contact = models.CharField(max_length=150)
    # Readiness gate: an open break on a filing's source accounts above this amount blocks approval.
    break_threshold = models.DecimalField(max_digits=24, decimal_places=6, default=0)
    fx_rate_source = models.CharField(
        max_length=100, default="tenant FX table (filings_fxrate)", help_text="named in every lineage row"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="uniq_filing_institution_tenant")]

    def __str__(self):
        return self.name


class Branch(TenantOwned):
    """A transaction location (party 34)."""

    code = models.CharField(max_length=32)
    name = models.CharField(max_length=150)
    ein = models.CharField(max_length=9)
    rssd = models.CharField(max_length=10, blank=True)
    street = models.CharField(max_length=100)
    city = models.CharField(max_length=50)
    state = models.CharField(max_length=3)
    zip_code = models.CharField(max_length=9)
    country = models.CharField(max_length=2, default="US")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="uniq_branch_tenant_code")]
        verbose_name_plural = "branches"

    def __str__(self):
        return f"{self.code} {self.name}"


class ExemptPerson(TenantOwned):
    """A person exempt from CTR filing (31 CFR 1020.315): excluded from aggregation with the reason."""

    party_key = models.CharField(max_length=64)
    reason = models.CharField(max_length=200)
    valid_from = models.DateField()
    valid_to = models.DateField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "party_key", "valid_from"], name="uniq_exempt_person")
        ]

    def __str__(self):
        return f"{self.party_key} ({self.reason})"


class FxRate(TenantOwned):
    """USD per one unit of ``currency`` on ``business_date``, from the named source."""

    currency = models.CharField(max_length=3)
    business_date = models.DateField()
    usd_per_unit = models.DecimalField(max_digits=24, decimal_places=10)
    source = models.CharField(max_length=100)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "currency", "business_date"], name="uniq_fx_rate"),
            models.CheckConstraint(condition=Q(usd_per_unit__gt=0), name="fx_rate_positive"),
        ]

    def __str__(self):
        return f"{self.currency} {self.business_date} {self.usd_per_unit}"


# --- data in ------------------------------------------------------------------------------------


class PartyVersion(TenantOwned):
    """A customer as it stood from ``valid_from``: a change is a new version, never an update, so a
    filing keeps the version it was prepared from."""

    class TinType(models.TextChoices):
        SSN = "1", "SSN/ITIN"
        EIN = "2", "EIN"
        FOREIGN = "9", "Foreign"

    party_key = models.CharField(max_length=64)
    version = models.PositiveIntegerField()
    is_current = models.BooleanField(default=True)
    is_entity = models.BooleanField(default=False)
    last_name = models.CharField(max_length=150, help_text="entity name for an entity")
    first_name = models.CharField(max_length=35, blank=True)
    middle_name = models.CharField(max_length=35, blank=True)
    tin = models.CharField(max_length=25, blank=True)
    tin_type = models.CharField(max_length=2, choices=TinType.choices, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    street = models.CharField(max_length=100, blank=True)
    city = models.CharField(max_length=50, blank=True)
    state = models.CharField(max_length=3, blank=True)
    zip_code = models.CharField(max_length=9, blank=True)
    country = models.CharField(max_length=2, blank=True)
    id_type = models.CharField(
        max_length=3, blank=True, help_text="5 driver's license, 6 passport, 999 other"
    )
    id_number = models.CharField(max_length=25, blank=True)
    id_issuer_state = models.CharField(max_length=3, blank=True)
    id_issuer_country = models.CharField(max_length=2, blank=True)
    occupation = models.CharField(max_length=50, blank=True)
    # The ingestion batch that brought this version (a source of kind parties; docs/filings.md).
    batch = models.ForeignKey("reconciliation.IngestionBatch", on_delete=models.PROTECT, related_name="+")
    valid_from = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "party_key", "version"], name="uniq_party_version"),
            models.UniqueConstraint(
                fields=["tenant", "party_key"], condition=Q(is_current=True), name="uniq_party_current"
            ),
        ]

    def __str__(self):
        return f"{self.party_key} v{self.version}"


class CashTransaction(TenantOwned):
    class Direction(models.TextChoices):
        IN = "in"
        OUT = "out"

    external_id = models.CharField(max_length=64)
    version = models.PositiveIntegerField(default=1)
    is_current = models.BooleanField(default=True)
    business_date = models.DateField()
    occurred_at = models.TimeField(null=True, blank=True)
    branch_code = models.CharField(max_length=32)
    direction = models.CharField(max_length=3, choices=Direction.choices)
    amount = models.DecimalField(max_digits=24, decimal_places=6)
    currency = models.CharField(max_length=3)
    account = models.CharField(max_length=40, blank=True)
    conducted_by = models.CharField(max_length=64, help_text="party key of the person conducting it")
    on_behalf_of = models.CharField(max_length=64, blank=True, help_text="party key (blank: own behalf)")
    detail_code = models.CharField(max_length=3, blank=True, help_text="FinCEN detail type (55 deposit, ...)")
    # The ingestion batch that brought this version (a source of kind cash_transactions).
    batch = models.ForeignKey("reconciliation.IngestionBatch", on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "external_id", "version"], name="uniq_cash_txn_version"
            ),
            models.UniqueConstraint(
                fields=["tenant", "external_id"], condition=Q(is_current=True), name="uniq_cash_txn_current"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="cash_txn_amount_positive"),
        ]
        indexes = [models.Index(fields=["tenant", "business_date"], name="cash_txn_tenant_date_idx")]

    def __str__(self):
        return f"{self.external_id} v{self.version}"


# --- filings -----------------------------------------------------------------------------------


class Filing(TenantOwned):
    class Kind(models.TextChoices):
        CTR = "ctr", "CTR (CTRX)"
        SAR = "sar", "SAR (SARX)"

    class Status(models.TextChoices):
        DRAFT = "draft"
        VALIDATED = "validated"
        PENDING_APPROVAL = "pending_approval"
        APPROVED = "approved"
        PACKAGED = "packaged"
        SUBMITTED = "submitted"
        ACCEPTED = "accepted"
        ACCEPTED_WITH_WARNINGS = "accepted_with_warnings"
        SUPERSEDED = "superseded"  # an amendment replaced it (kept, with its BSA ID)

    kind = models.CharField(max_length=3, choices=Kind.choices)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.DRAFT)
    subject_key = models.CharField(
        max_length=64, help_text="CTR: the group's first person over the threshold (party key)"
    )
    period_start = models.DateField()
    period_end = models.DateField()
    due_date = models.DateField()
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="amendments"
    )
    version = models.PositiveIntegerField(default=1)
    prior_bsa_id = models.CharField(max_length=14, blank=True)
    bsa_id = models.CharField(max_length=14, blank=True)
    total_cash_in = models.DecimalField(max_digits=24, decimal_places=6, default=0, help_text="USD, exact")
    total_cash_out = models.DecimalField(max_digits=24, decimal_places=6, default=0, help_text="USD, exact")
    errors = models.JSONField(default=list, blank=True, help_text="validation or acknowledgement errors")
    preparer_id = models.CharField(max_length=64, blank=True)
    preparer = models.CharField(max_length=200)
    approver = models.CharField(max_length=200, blank=True)
    gate_override = models.JSONField(default=dict, blank=True, help_text="breaks overridden at approval, why")
    package = models.ForeignKey(
        "Package", null=True, blank=True, on_delete=models.PROTECT, related_name="filings"
    )
    prepared_at = models.DateTimeField()
    approved_at = models.DateTimeField(null=True, blank=True)
    reminded_on = models.DateField(null=True, blank=True)
    # SAR draft (kind "sar"): referred from the exception desk, edited by compliance (audited).
    detected_on = models.DateField(
        null=True, blank=True, help_text="SAR: initial detection (the deadline runs from it)"
    )
    referred_case_ids = models.JSONField(default=list, blank=True)
    accounts = models.JSONField(default=list, blank=True)
    amount_involved = models.DecimalField(max_digits=24, decimal_places=2, null=True, blank=True)
    activity_subtypes = models.JSONField(
        default=list, blank=True, help_text="SuspiciousActivitySubtypeID codes"
    )
    activity_other_texts = models.JSONField(
        default=dict,
        blank=True,
        help_text='"Other" subtype code → its description (OtherSuspiciousActivityTypeText)',
    )
    narrative = models.TextField(blank=True)

    class Meta:
        constraints = [
            # One original CTR per person per business day: preparing twice adds nothing.
            models.UniqueConstraint(
                fields=["tenant", "kind", "subject_key", "period_start"],
                condition=Q(parent__isnull=True),
                name="uniq_filing_original",
            ),
            models.UniqueConstraint(fields=["parent"], name="uniq_filing_one_amendment_per_parent"),
            models.CheckConstraint(
                condition=Q(parent__isnull=True) | ~Q(prior_bsa_id=""),
                name="filing_amendment_has_prior_bsa_id",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "status", "due_date"], name="filing_tenant_status_due_idx")]

    def __str__(self):
        return f"{self.kind.upper()} {self.pk} {self.subject_key} {self.period_start} v{self.version}"


class FilingSubject(TenantOwned):
    """A person reported on a filing in one role (FinCEN CTR FAQ 16: a person with two roles has
    two Part I sections), as their party version stood at preparation."""

    filing = models.ForeignKey(Filing, on_delete=models.PROTECT, related_name="subjects")
    party_key = models.CharField(max_length=64)
    party_version = models.ForeignKey(
        PartyVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    role = models.CharField(
        max_length=2, help_text="ActivityPartyTypeCode: 50 own behalf, 17 for another, 23 on whose behalf"
    )
    cash_in = models.DecimalField(max_digits=24, decimal_places=6, default=0)
    cash_out = models.DecimalField(max_digits=24, decimal_places=6, default=0)
    transactions = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["filing", "party_key", "role"], name="uniq_filing_subject_role")
        ]
        ordering = ["filing", "id"]


class FilingLineage(TenantOwned):
    """Which cash transaction (version) makes up which reported amount, at what rate.

    The biggest table the aggregation writes: no index on tenant (read by filing) nor on filing
    alone (the unique (filing, transaction) index serves it); the transaction index answers
    "which filings report this transaction"."""

    tenant = models.ForeignKey("jfintech.Tenant", on_delete=models.PROTECT, related_name="+", db_index=False)
    filing = models.ForeignKey(Filing, on_delete=models.PROTECT, related_name="lineage", db_index=False)
    transaction = models.ForeignKey(CashTransaction, on_delete=models.PROTECT, related_name="+")
    direction = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=24, decimal_places=6)
    currency = models.CharField(max_length=3)
    usd_per_unit = models.DecimalField(max_digits=24, decimal_places=10)
    amount_usd = models.DecimalField(max_digits=34, decimal_places=16)
    rate_source = models.CharField(max_length=100)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["filing", "transaction"], name="uniq_lineage_filing_txn")
        ]
        ordering = ["filing", "transaction"]


class CtrExclusion(TenantOwned):
    """A person-day over the threshold that was not reported, and why (an exempt person)."""

    party_key = models.CharField(max_length=64)
    business_date = models.DateField()
    total_cash_in = models.DecimalField(max_digits=34, decimal_places=16)
    total_cash_out = models.DecimalField(max_digits=34, decimal_places=16)
    reason = models.CharField(max_length=200)
    recorded_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "party_key", "business_date"], name="uniq_ctr_exclusion"
            )
        ]


class Package(TenantOwned):
    """A batch file as filed: XML and manifest, write-once (a trigger refuses UPDATE and DELETE of
    the content; only the submission stamp may be set, once)."""

    kind = models.CharField(max_length=3, choices=Filing.Kind.choices)
    xml = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    size_bytes = models.IntegerField()
    manifest = models.JSONField()
    created_at = models.DateTimeField()
    created_by = models.CharField(max_length=200)
    submitted_at = models.DateTimeField(null=True, blank=True)
    submitted_by = models.CharField(max_length=200, blank=True)

    def __str__(self):
        return f"package {self.pk} {self.kind} {self.sha256[:12]}"


class Acknowledgement(TenantOwned):
    package = models.ForeignKey(Package, on_delete=models.PROTECT, related_name="acknowledgements")
    xml = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    received_at = models.DateTimeField()
    received_by = models.CharField(max_length=200)
    summary = models.JSONField(default=dict)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["package", "sha256"], name="uniq_ack_per_package")]
