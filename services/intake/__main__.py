"""`python -m hotline.intake`: run the intake service."""

from hotline.shared.config import Settings
from hotline.shared.service import serve

from .app import create_app

settings = Settings()
serve(create_app(settings), "intake", settings.intake_port, settings.host)
