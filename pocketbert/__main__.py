"""Allow ``python -m pocketbert``."""

from pocketbert.cli import main

raise SystemExit(main())
