"""`python -m hotline.triage`: run the triage service."""

from hotline.shared.config import Settings
from hotline.shared.service import serve

from .app import create_app

settings = Settings()
serve(create_app(settings), "triage", settings.triage_port, settings.host)
