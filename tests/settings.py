"""Settings for the test suite: the project's settings with a test secret."""

from __future__ import annotations

import os

os.environ.setdefault(
    "SECRET_KEY", "tests-only-not-a-secret-but-long-enough-for-the-deploy-checks-0123456789"
)
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("TUSHARE_RETRY_WAIT", "0")

from invest_alchemy.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
SITE_RUN_CHECK_SECONDS = 0  # a new run shows at once
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Queued tasks (confirmation emails, the admin's runs and resends) run at once,
# in the test's process; tests that check the queueing itself turn this off.
Q_CLUSTER = {**Q_CLUSTER, "sync": True}  # noqa: F405
