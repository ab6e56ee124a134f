"""``python -m tensor_inspector`` runs the command-line entry point."""

import sys

from tensor_inspector.cli import main

sys.exit(main())
