"""ASGI entry point of the example project: the one changed line is the import."""

import os

from zcmiddleware.django import get_asgi_application  # was: django.core.asgi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

# debug_header names the path that carried each file (leave it off in production).
application = get_asgi_application(debug_header="X-ZeroCopy-Path")
