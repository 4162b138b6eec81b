"""Settings of the example project: Django's usual middleware, nothing else."""

import os
import tempfile

DEBUG = False
SECRET_KEY = "example-only-not-secret"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "mysite.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.http.ConditionalGetMiddleware",
]
USE_TZ = True

#: The file /download serves (run.py generates it).
DOWNLOAD_PATH = os.environ.get(
    "DOWNLOAD_PATH", os.path.join(tempfile.gettempdir(), "zcmiddleware-example", "download.bin")
)
