"""Suite-wide settings: hypothesis profiles.

CI (``CI=true``) runs hypothesis derandomized, so a red build is reproducible;
locally, examples vary from run to run. Deadlines are off everywhere: the
suite shares two cores with real servers, and slowness is not a failure.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI", "").lower() in {"1", "true", "yes"} else "dev")
