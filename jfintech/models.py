"""Models of the platform core, defined in their subpackages and registered here."""

from jfintech.health.models import PipelineCheck, PipelineCheckPart

__all__ = ["PipelineCheck", "PipelineCheckPart"]
