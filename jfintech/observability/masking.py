"""The one log processor that masks account numbers and personal data.

Runs on every line (ours and the libraries'), after the exception is rendered to text, right
before the renderer (see ``build_logging_config``), so a traceback or a database error that quotes
a row is masked too.

What is masked, and how (docs/observability.md):

- IBANs anywhere in any string, with or without the print spaces, when the ISO 13616 mod-97
  check holds (so a random upper-case token is left alone): ``DE89370400440532013000`` ->
  ``DE****************3000``.
- In account-like fields (a key containing account, acct, iban, bban, pan or card): every run of
  6+ digits keeps only its last four: ``ACC-12345678`` -> ``ACC-****5678``; an int becomes a
  masked string.
- In personal fields (names, e-mail addresses, phone numbers of people; the list below): each
  word keeps its first letter: ``John Smith`` -> ``J*** S****``.
- E-mail addresses anywhere in any string keep the first letter and the domain:
  ``john.smith@bank.example`` -> ``j*********@bank.example``.

Identifiers we emit (trace_id, span_id, request_id, task_id, timestamp, ...) are never touched.
"""

from __future__ import annotations

import re

IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
EMAIL_RE = re.compile(r"\b([A-Za-z0-9])([A-Za-z0-9._%+-]*)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)\b")
DIGIT_RUN_RE = re.compile(r"\d{6,}")
ACCOUNT_KEY_RE = re.compile(r"account|acct|iban|bban|(?:^|[._])(?:pan|card|card_number|card_no)(?:$|[._])")

PERSONAL_KEYS = frozenset(
    {
        "name", "full_name", "first_name", "last_name", "email", "user_email", "phone",
        "account_name", "account_holder", "holder_name", "customer_name",
        "counterparty", "counterparty_name", "beneficiary", "beneficiary_name",
        "payer", "payer_name", "payee", "payee_name", "debtor", "debtor_name",
        "creditor", "creditor_name", "ordering_customer",
    }
)  # fmt: skip
# Ours, never personal: hex/uuid ids, names of code, numbers we compute.
SAFE_KEYS = frozenset(
    {
        "timestamp", "level", "logger", "service.name", "trace_id", "span_id", "request_id",
        "correlation_id", "task_id", "parent_task_id", "child_task_id", "task", "child_task_name",
        "duration_ms", "error.type", "recon.run_id", "txn.type", "tenant", "user_id",
    }
)  # fmt: skip


def _iban_ok(compact: str) -> bool:
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    digits = "".join(str(int(c, 36)) for c in rearranged)
    return int(digits) % 97 == 1


def _mask_iban(match: re.Match) -> str:
    raw = match.group(0)
    compact = raw.replace(" ", "")
    if not _iban_ok(compact):
        return raw
    return compact[:2] + "*" * (len(compact) - 6) + compact[-4:]


def _mask_email(match: re.Match) -> str:
    return f"{match.group(1)}{'*' * len(match.group(2))}@{match.group(3)}"


def _mask_digits(match: re.Match) -> str:
    digits = match.group(0)
    return "*" * (len(digits) - 4) + digits[-4:]


def _mask_words(text: str) -> str:
    return re.sub(r"\w+", lambda m: m.group(0)[0] + "*" * (len(m.group(0)) - 1), text)


def mask_text(text: str) -> str:
    """IBANs and e-mail addresses anywhere in free text."""
    if "@" in text:
        text = EMAIL_RE.sub(_mask_email, text)
    return IBAN_RE.sub(_mask_iban, text)


def _mask_value(key: str, value, *, account: bool, personal: bool):
    if isinstance(value, dict):
        return {k: _mask_field(str(k), v, account=account, personal=personal) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_mask_value(key, v, account=account, personal=personal) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) and not (account or personal):
        return value
    if not isinstance(value, str | int):
        return value
    text = str(value)
    if personal:
        # An address keeps its domain (which bank, which firm); a name keeps initials.
        return EMAIL_RE.sub(_mask_email, text) if EMAIL_RE.fullmatch(text) else _mask_words(text)
    text = mask_text(text)
    if account:
        text = DIGIT_RUN_RE.sub(_mask_digits, text)
    return text


def _mask_field(key: str, value, *, account: bool = False, personal: bool = False):
    if key in SAFE_KEYS:
        return value
    lowered = key.lower()
    return _mask_value(
        key,
        value,
        account=account or (bool(ACCOUNT_KEY_RE.search(lowered)) and lowered not in PERSONAL_KEYS),
        personal=personal or lowered in PERSONAL_KEYS,
    )


def mask_sensitive(_, __, event_dict: dict) -> dict:
    """structlog processor: mask account numbers and personal data in every field of a line."""
    return {key: _mask_field(key, value) for key, value in event_dict.items()}
