"""A Django project on ASGI whose FileResponse goes zero-copy, Range included.

    python examples/django_asgi/run.py          # serve on http://127.0.0.1:8000/
    python examples/django_asgi/run.py --demo   # download it three ways, check, exit

The project is ordinary (``mysite/``); its ``asgi.py`` imports
``get_asgi_application`` from ``zcmiddleware.django`` instead of Django. The same
project runs under any ASGI server, e.g. from this directory:
``uvicorn mysite.asgi:application --http zcmiddleware.uvicorn:AutoHTTPProtocol``.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # mysite, and the examples' _asgi_demo

from _asgi_demo import demo, serve  # noqa: E402
from _content import large_file, options  # noqa: E402

PATH = os.environ["DOWNLOAD_PATH"] = large_file()

from mysite.asgi import application  # noqa: E402

if __name__ == "__main__":
    args = options(__doc__.splitlines()[0])
    if args.demo:
        demo(application, PATH)
    else:
        serve(application, args.port)
