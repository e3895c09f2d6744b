from __future__ import annotations

from oss_runtime.cli import main

raise SystemExit(main())
