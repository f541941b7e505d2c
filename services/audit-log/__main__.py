"""`python -m hotline.audit_log [--no-consume]`: run the audit-log service.

`--no-consume` serves, integrates and accepts cosignatures without reading Kafka: a
public read replica, or a log seeded by other means (the tests' and the benchmark's).
"""

import argparse

from hotline.shared.config import Settings
from hotline.shared.service import serve

from .app import create_app

parser = argparse.ArgumentParser(prog="python -m hotline.audit_log")
parser.add_argument("--no-consume", action="store_true", help="do not sequence from Kafka")
arguments = parser.parse_args()
settings = Settings()
serve(
    create_app(settings, consume=not arguments.no_consume),
    "audit-log",
    settings.audit_port,
    settings.host,
)
