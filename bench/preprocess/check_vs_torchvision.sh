#!/bin/sh
# check_vs_torchvision.sh - compare the server's image preprocessing (src/serve/
# image_io.c + preprocess.c) with torchvision's on random images: builds a small
# driver with the C compiler, then runs compare.py with a Python that has torch,
# torchvision and Pillow (Debian: python3-torchvision; PYTHON overrides).
# Expected: identical to the PIL pipeline but for rare 1-step ties (JPEGs may also
# differ where libjpeg-turbo and Pillow's libjpeg build decode differently).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
${CC:-cc} -O2 -std=c11 -D_GNU_SOURCE -I"$root/src" -I"$root/include" -o "$tmp/preprocess_file" \
    "$here/preprocess_file.c" "$root/src/serve/image_io.c" "$root/src/serve/preprocess.c" \
    "$root/src/core/error.c" $(pkg-config --cflags --libs libpng) -ljpeg -lm
"$PYTHON" "$here/compare.py" "$tmp/preprocess_file" "$tmp"
