#!/usr/bin/env bash
# Build the one-folder desktop bundle: dist/tensor-inspector/tensor-inspector (about a minute).
#
#   pip install -c constraints.txt -e ".[package]" && bash packaging/build.sh
#
# Frameworks are not bundled; see packaging/README.md for adding them beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${TENSOR_INSPECTOR_BUILD_DIR:-build/pyinstaller}"
dist="${TENSOR_INSPECTOR_DIST_DIR:-dist}"
python -m PyInstaller --noconfirm --clean --log-level ERROR \
    --workpath "$work" --distpath "$dist" packaging/tensor-inspector.spec
echo "built $dist/tensor-inspector ($(du -sh "$dist/tensor-inspector" | cut -f1))"
