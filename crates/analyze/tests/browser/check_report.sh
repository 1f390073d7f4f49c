#!/usr/bin/env bash
# Opens the quickstart's HTML report in headless Chromium: it must load with no console errors and
# no network requests, and a screenshot must show the plots (checked for colour variety; look at
# the PNG too). Not a cargo test: CI calls it where Chromium is installed
# (Debian: apt-get install -y chromium).
#
# usage: check_report.sh [WEIGHTSPACE_BIN] [OUT_DIR]
set -euo pipefail
BIN=${1:-target/debug/weightspace}
OUT=${2:-$(mktemp -d)}
CHROME=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -z "$CHROME" ]]; then
  echo "check_report: chromium not found (apt-get install -y chromium)" >&2
  exit 2
fi
mkdir -p "$OUT"
# The quickstart's own report: 10 zoo nets (two parents, eight fine-tuned children) with
# spectra, a similarity heat map and the recovered lineage tree.
"$BIN" quickstart --out "$OUT/demo" --quiet > "$OUT/quickstart.txt"
html="$OUT/demo/report.html"
if grep -Eq '<script|src=|href="http|url\(http' "$html"; then
  echo "check_report: the report references external resources or scripts" >&2
  exit 1
fi
common=(--headless --no-sandbox --disable-gpu --no-first-run --disable-extensions
  --disable-background-networking --user-data-dir="$OUT/profile")
# Console messages go to stderr with --enable-logging; errors show as CONSOLE(...) lines at
# level ERROR or as "Uncaught".
"$CHROME" "${common[@]}" --enable-logging=stderr --v=0 --dump-dom "file://$html" \
  > "$OUT/dom.html" 2> "$OUT/console.log" || true
if grep -E 'CONSOLE.*(ERROR|Uncaught)|Uncaught |Failed to load resource' "$OUT/console.log"; then
  echo "check_report: console errors (see $OUT/console.log)" >&2
  exit 1
fi
if ! grep -q '<svg' "$OUT/dom.html"; then
  echo "check_report: the loaded DOM has no SVG plots" >&2
  exit 1
fi
"$CHROME" "${common[@]}" --hide-scrollbars --window-size=1280,2400 \
  --screenshot="$OUT/report.png" "file://$html" 2>> "$OUT/console.log" || true
test -s "$OUT/report.png"
python3 - "$OUT/report.png" <<'PY'
import struct, sys, zlib
# Minimal PNG decoder (8-bit RGB/RGBA, non-interlaced) to count colours without dependencies.
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, w = 8, b"", 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        assert depth == 8 and ctype in (2, 6), (depth, ctype)
        bpp = 3 if ctype == 2 else 4
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
raw = zlib.decompress(idat)
stride = w * bpp
prev = bytearray(stride)
colours, off = set(), 0
for y in range(h):
    f, line = raw[off], bytearray(raw[off + 1:off + 1 + stride])
    off += 1 + stride
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    prev = line
    if y % 8 == 0:
        for x in range(0, w, 4):
            colours.add(bytes(line[x * bpp:x * bpp + 3]))
print(f"screenshot {w}x{h}, {len(colours)} distinct colours sampled")
# A blank or text-only page has few colours; plots (blue bars, red fits, heat map) have many.
assert len(colours) >= 40, "screenshot looks empty"
PY
echo "check_report: ok ($html, screenshot $OUT/report.png)"
