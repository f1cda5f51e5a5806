"""The image's HEALTHCHECK: exit 0 when /healthz answers 200, 1 otherwise.

Standard library only (the slim image has no curl) and no Django import, so a
probe costs a few milliseconds. Redirects are not followed: a 301 to https
means the probe missed the health endpoint, which is a failure to see.

    python docker/healthcheck.py [URL]    # default http://127.0.0.1:$PORT/healthz
"""

from __future__ import annotations

import http.client
import os
import sys
import urllib.error
import urllib.request

TIMEOUT = 4  # seconds; below the HEALTHCHECK --timeout, so the script reports itself


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def main(argv: list[str]) -> int:
    port = os.environ.get("PORT") or "8000"
    url = argv[1] if len(argv) > 1 else f"http://127.0.0.1:{port}/healthz"
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=TIMEOUT) as response:
            status = response.status
            body = response.read(2000)
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read(2000)
    except (OSError, ValueError, http.client.HTTPException) as e:  # refused, timed out, …
        print(f"unhealthy: {url}: {e}", file=sys.stderr)
        return 1
    text = body.decode("utf-8", "replace").strip()
    if status == 200:
        print(f"healthy: {text}")
        return 0
    print(f"unhealthy: {url} answered {status}: {text}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
