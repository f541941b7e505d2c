"""`python -m hotline.notify`: run the notify service."""

from hotline.shared.config import Settings
from hotline.shared.service import serve

from .app import create_app

settings = Settings()
serve(create_app(settings), "notify", settings.notify_port, settings.host)
