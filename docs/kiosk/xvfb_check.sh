#!/usr/bin/env bash
# The kiosk screen in a real full-screen OpenCV window under Xvfb, with Debian's python3 and
# python3-opencv (the GUI OpenCV deploy/install.sh adds on kiosks): docs/kiosk/xvfb_show.py shows
# it through emoedge's DisplaySink, screenshots the X screen with `xwd -root` and compares.
#
#   bash docs/kiosk/xvfb_check.sh OUT_DIR [WIDTHxHEIGHT] [-- xvfb_show.py options: --image P --faces F.json]
#
# Needs: apt-get install -y xvfb x11-apps python3-opencv. Exit 0: the screenshots show the
# screen; 1: they do not; 77: this machine cannot run the check (the reason is printed).
set -euo pipefail

OUT=${1:?usage: xvfb_check.sh OUT_DIR [WIDTHxHEIGHT] [-- xvfb_show.py options]}
SIZE=${2:-1280x720}
shift $(( $# >= 2 ? 2 : 1 ))
[[ ${1:-} == "--" ]] && shift
REPO=$(cd "$(dirname "$0")/../.." && pwd)
PY=${EMOEDGE_APT_PYTHON:-/usr/bin/python3}

skip() { echo "xvfb_check: skipped: $*" >&2; exit 77; }
command -v Xvfb >/dev/null || skip "no Xvfb (apt-get install -y xvfb)"
command -v xwd >/dev/null || skip "no xwd for the screenshot (apt-get install -y x11-apps)"
[[ -x $PY ]] || skip "no $PY"
"$PY" -c 'import cv2; cv2.namedWindow' 2>/dev/null || skip "$PY has no OpenCV (apt-get install -y python3-opencv)"
"$PY" -c 'import cv2, sys; sys.exit(0 if "GUI:" in cv2.getBuildInformation()
          and "GUI:                           NONE" not in cv2.getBuildInformation() else 1)' \
    || skip "$PY's OpenCV has no GUI back-end"

mkdir -p "$OUT"
FIFO=$(mktemp -u)
RUNTIME_DIR=$(mktemp -d)   # Qt wants a private XDG_RUNTIME_DIR
mkfifo "$FIFO"
Xvfb -displayfd 5 -screen 0 "${SIZE}x24" -nolisten tcp 5>"$FIFO" >"$OUT/xvfb.log" 2>&1 &
XPID=$!
trap 'kill "$XPID" 2>/dev/null || true; wait "$XPID" 2>/dev/null || true; rm -rf "$FIFO" "$RUNTIME_DIR"' EXIT
read -r -t 20 DISPNUM <"$FIFO" || skip "Xvfb did not start ($(tail -n 3 "$OUT/xvfb.log" | tr '\n' ' '))"
echo "xvfb_check: Xvfb :$DISPNUM ${SIZE}, $("$PY" --version), $("$PY" -c 'import cv2; print("OpenCV", cv2.__version__)')"

set +e
DISPLAY=":$DISPNUM" PYTHONPATH="$REPO" XDG_RUNTIME_DIR="$RUNTIME_DIR" QT_QPA_PLATFORM=xcb \
    "$PY" "$REPO/docs/kiosk/xvfb_show.py" --size "$SIZE" --out "$OUT" "$@"
RC=$?
set -e
exit "$RC"
