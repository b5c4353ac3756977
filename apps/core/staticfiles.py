"""Static files storage: whitenoise's compressed manifest storage that never breaks a page.

`manage.py collectstatic` (run by `make setup`) writes each file under a content-hashed name
(`plotly-basic.min.3f2a….js`) with `.gz` and `.br` siblings, and a manifest; `{% static %}` then renders
the hashed names, which whitenoise serves compressed with a far-future immutable Cache-Control, so a
changed file gets a new URL and an unchanged one is never fetched again.

Where a name is not in the manifest (collectstatic has not run in this data dir, or not since the file
was added), Django's storage raises and every page using it would answer 500. This one logs a warning
once per name and renders the plain name instead, which whitenoise serves from the finders
(WHITENOISE_USE_FINDERS): uncompressed and with its short default cache, but working.

No warning for a name that no finder has either: whitenoise asks for such names itself at start-up (it
strips what looks like a hash from every file with a dot in its stem, `htmx.min.js` → `htmx.js`, and asks
the storage for that), and "run collectstatic" would be a false lead for them.
"""
from __future__ import annotations

import logging

from django.contrib.staticfiles import finders
from whitenoise.storage import CompressedManifestStaticFilesStorage

log = logging.getLogger(__name__)


class HubStaticFilesStorage(CompressedManifestStaticFilesStorage):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._warned: set[str] = set()  # one warning per name (the storage lives as long as the process)

    def stored_name(self, name: str) -> str:
        try:
            return super().stored_name(name)
        except ValueError:
            if name not in self._warned:
                self._warned.add(name)
                if not finders.find(name):  # no such file anywhere (whitenoise's own guesses at start-up)
                    return name
                log.warning("static file %r is not in the collected manifest (%s): served uncompressed and "
                            "not cache-busted; run `make setup` or `python manage.py collectstatic`",
                            name, self.location)
            return name
