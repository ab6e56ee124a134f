#!/usr/bin/env bash
# Start the built bundle as a user would, with nothing from this checkout on its path:
# version, the CLI on a demo file, and the window rendering the demo .npz to a PNG (which
# starts the bundle a second time as its own reader process).
#
#   bash packaging/smoke_test.sh [dist/tensor-inspector/tensor-inspector]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
app="$(realpath "${1:-$root/dist/tensor-inspector/tensor-inspector}")"
demo="$root/tensor_inspector/resources/demo/demo_arrays.npz"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cd "$out"  # not the checkout: the bundle must not import the source tree
run() { env -u PYTHONPATH -u PYTHONHOME "$@"; }

version="$(run "$app" --version)"
echo "version: $version"
[ -n "$version" ]

run "$app" ls "$demo" > ls.txt
grep -q . ls.txt || { echo "FAIL: ls printed no nodes"; exit 1; }
echo "ls: $(wc -l < ls.txt) nodes"

# No display and no screenshot: one sentence, exit code 1, at once.
set +e
run env -u DISPLAY -u WAYLAND_DISPLAY -u QT_QPA_PLATFORM timeout 60 "$app" "$demo" 2> nodisplay.txt
code=$?
set -e
[ "$code" = 1 ] && grep -q "No display found" nodisplay.txt || { echo "FAIL: no-display exit $code: $(cat nodisplay.txt)"; exit 1; }
echo "no display: exit 1, $(cat nodisplay.txt)"

run env -u DISPLAY -u WAYLAND_DISPLAY timeout 300 "$app" gui "$demo" --screenshot "$out/shot.png"
[ -s "$out/shot.png" ] || { echo "FAIL: no screenshot written"; exit 1; }
python3 - "$out/shot.png" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read(24)
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
width, height = struct.unpack(">II", data[16:24])
assert width >= 800 and height >= 600, (width, height)
print(f"screenshot: {width}x{height} PNG")
PY
echo "smoke test passed"
