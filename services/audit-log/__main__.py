"""`python -m hotline.audit_log`: run the audit-log service."""

from hotline.shared.config import Settings
from hotline.shared.service import serve

from .app import create_app

settings = Settings()
serve(create_app(settings), "audit-log", settings.audit_port, settings.host)
