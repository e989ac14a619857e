"""The dashboard's tests reuse the daemon tests' `daemons` fixture (a real daemon process in a
temp folder, stopped after the test)."""

from tests.integration.test_daemon import daemons  # noqa: F401 - a fixture, registered here
