"""Run by test_invalidation.py as a second web process: it configures Django on the test settings,
joins the invalidation channel (REDIS_URL and HUB_INVALIDATION_CHANNEL from the environment), puts a key
and a route into its own in-process caches as a lookup would, then reports on stdout, as JSON lines,
how long after `ready` each was dropped."""
import json
import os
import sys
import time

os.environ["DJANGO_SETTINGS_MODULE"] = "training_hub.test_settings"
import django  # noqa: E402

django.setup()

from apps.accounts import key_cache  # noqa: E402
from apps.core import invalidation  # noqa: E402
from apps.proxy import gateway  # noqa: E402
from apps.proxy.selectors import Route  # noqa: E402

prefix, alias = sys.argv[1], sys.argv[2]
if not invalidation.wait_live(10):
    print(json.dumps({"error": "not live"}), flush=True)
    sys.exit(1)
key_cache._entries[prefix] = key_cache._Entry("0" * 64, 1, 1, time.monotonic())
gateway._route_cache[(alias, False)] = Route(alias, 1, "mv-1", "http://x", None, False, alias)
print(json.dumps({"ready": True}), flush=True)
start = time.monotonic()
reported = set()
deadline = start + 10
while time.monotonic() < deadline and len(reported) < 2:
    if "key" not in reported and prefix not in key_cache.cached_prefixes():
        reported.add("key")
        print(json.dumps({"dropped": "key", "at": time.monotonic()}), flush=True)
    if "route" not in reported and not gateway._route_cache:
        reported.add("route")
        print(json.dumps({"dropped": "route", "at": time.monotonic()}), flush=True)
    time.sleep(0.005)
