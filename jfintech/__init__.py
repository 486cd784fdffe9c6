"""The platform core every domain app leans on. It imports no domain app."""
