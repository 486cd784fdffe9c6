"""The audit trail: ``record(...)`` inside every service's transaction.

Usage, in a service::

    with transaction.atomic():
        ...write...
        audit.record(tenant=t, actor=actor, action="source.create", obj=source, after=snapshot)
"""

from jfintech.audit.actors import SYSTEM, Actor
from jfintech.audit.recorder import record, record_many

__all__ = ["SYSTEM", "Actor", "record", "record_many"]
