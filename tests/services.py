"""The services some tests need besides the code under test (bash .ci/run starts them): where they
listen, and whether they do. Test files import this module by name: pytest puts tests/ on sys.path
when it loads tests/conftest.py."""

from __future__ import annotations

import socket

# A Redis database of the unit and integration tests' own (the scheduler tests use /14).
REDIS_URL = "redis://127.0.0.1:6379/15"


def redis_available(host: str = "127.0.0.1", port: int = 6379) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False
