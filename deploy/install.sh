#!/usr/bin/env bash
# Install emoedge on a board. Idempotent: every step checks before it acts, so running it again
# changes nothing that is already right. --dry-run prints what it would do and changes nothing.
#
#   deploy/install.sh --board rpi   --mode sensor --purpose "..." --jurisdiction UK [--dry-run]   # Pi OS trixie or bookworm
#   deploy/install.sh --board coral --mode kiosk  [--dry-run]   # Coral Dev Board (Mendel) / Pi + Coral USB
#   --no-picamera2: plain Debian (deploy/image), which has no python3-picamera2: a V4L2 camera through OpenCV
#
# What it does:
#   1. apt packages: python3-venv, python3-picamera2 (Pi), libedgetpu1-std (Coral; Coral's apt repo)
#   2. a system user 'emoedge' (groups video, render) and the data folder (writable; the root may be read-only)
#   3. a venv in PREFIX with --system-site-packages, so apt's picamera2/libcamera are visible, with the
#      numpy and OpenCV that match the release's apt picamera2 (chosen from /etc/os-release, and said):
#      trixie (Debian 13, the current Pi OS; numpy 2 in apt): the versions CI tests (constraints.txt);
#      bookworm (Debian 12; apt's picamera2 stack, simplejpeg and pidng, is built against numpy 1.24):
#      numpy<2, hence OpenCV 4.11 (opencv-python-headless 4.12 and later need numpy>=2)
#   4. emoedge itself (pip install of this checkout, the base set and [mqtt] (paho-mqtt): no TensorFlow on the device)
#   5. the systemd unit of the chosen mode, rendered from the profile by `emoedge profile unit` (Restart=,
#      WatchdogSec=, User=, data folder from its deployment section; --purpose/--jurisdiction go into
#      ExecStart), a journald size cap, and `emoedge doctor` at the end.
# A classroom sensor does not start without a purpose and a jurisdiction (EU AI Act Art. 5(1)(f):
# see README.md, Lawful use).
set -euo pipefail

BOARD=rpi MODE=sensor DRY=0 PICAMERA2=1 PREFIX=/opt/emoedge DATA=/data/emoedge PROFILE= PURPOSE= JURISDICTION=
SRC="$(cd "$(dirname "$0")/.." && pwd)"
while [ $# -gt 0 ]; do
  case "$1" in
    --board) BOARD="$2"; shift 2;;
    --mode) MODE="$2"; shift 2;;
    --prefix) PREFIX="$2"; shift 2;;
    --data) DATA="$2"; shift 2;;
    --profile) PROFILE="$2"; shift 2;;
    --purpose) PURPOSE="$2"; shift 2;;
    --jurisdiction) JURISDICTION="$2"; shift 2;;
    --dry-run) DRY=1; shift;;
    --no-picamera2) PICAMERA2=0; shift;;
    -h|--help) sed -n '2,23p' "$0"; exit 0;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2;;
  esac
done
case "$BOARD" in rpi|coral) ;; *) echo "install.sh: --board must be rpi or coral, got '$BOARD'" >&2; exit 2;; esac
case "$MODE" in kiosk|sensor) ;; *) echo "install.sh: --mode must be kiosk or sensor, got '$MODE'" >&2; exit 2;; esac

if [ -z "$PROFILE" ]; then
  case "$BOARD/$MODE" in
    rpi/kiosk) PROFILE=kiosk-rpi4;; rpi/sensor) PROFILE=classroom-sensor-rpi4;; coral/*) PROFILE=coral-devboard;;
  esac
fi

run() {  # print, and run unless --dry-run
  echo "+ $*"
  if [ "$DRY" = 0 ]; then "$@"; fi
}
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

PKGS=(python3-venv python3-pip)
[ "$BOARD" = rpi ] && [ "$PICAMERA2" = 1 ] && PKGS+=(python3-picamera2)
[ "$BOARD" = coral ] && PKGS+=(libedgetpu1-std)
[ "$MODE" = kiosk ] && PKGS+=(python3-opencv)   # GUI OpenCV for the full-screen window
MISSING=()
for p in "${PKGS[@]}"; do have_pkg "$p" || MISSING+=("$p"); done
if [ ${#MISSING[@]} -gt 0 ]; then
  if [ "$BOARD" = coral ] && [[ " ${MISSING[*]} " == *" libedgetpu1-std "* ]] \
      && [ ! -f /etc/apt/sources.list.d/coral-edgetpu.list ]; then
    echo "# libedgetpu1-std comes from Coral's apt repository; add it first:"
    run sh -c 'echo "deb https://packages.cloud.google.com/apt coral-edgetpu-stable main" > /etc/apt/sources.list.d/coral-edgetpu.list'
  fi
  run apt-get update
  run apt-get install -y "${MISSING[@]}"
else
  echo "# apt packages present: ${PKGS[*]}"
fi

if id emoedge >/dev/null 2>&1; then
  echo "# user emoedge exists"
else
  run useradd --system --create-home --groups video emoedge
fi
if [ -d "$DATA" ]; then echo "# $DATA exists"; else run mkdir -p "$DATA"; fi
run chown emoedge: "$DATA"

if [ -x "$PREFIX/venv/bin/python" ]; then
  echo "# venv $PREFIX/venv exists"
else
  run mkdir -p "$PREFIX"
  run python3 -m venv --system-site-packages "$PREFIX/venv"
fi
# numpy and OpenCV for this release's apt picamera2 (see the header)
OS_RELEASE="${EMOEDGE_OS_RELEASE:-/etc/os-release}"   # the variable: for tests of this choice
CODENAME="$( . "$OS_RELEASE" 2>/dev/null; echo "${VERSION_CODENAME:-unknown}" )"
case "$CODENAME" in
  bookworm)
    PIP_ARGS=("numpy<2" "opencv-python-headless<4.12")
    echo "# pins: $CODENAME: numpy<2 (apt's picamera2 stack is built against numpy 1.24), so OpenCV 4.11:" \
         "opencv-python-headless 4.12+ needs numpy>=2. Upgrade to Pi OS trixie for OpenCV 4.12+";;
  trixie|forky|sid)
    PIP_ARGS=(-c "$SRC/constraints.txt")
    echo "# pins: $CODENAME: numpy 2 as in apt; the versions CI tests (constraints.txt)";;
  buster|bullseye|mendel*)
    echo "install.sh: $CODENAME's Python is older than 3.10, which emoedge needs. On a Coral Dev Board (Mendel," \
         "Debian 10, Python 3.7) use a Coral USB Accelerator on a Raspberry Pi instead: --board rpi" \
         "(then libedgetpu1-std from Coral's repository)" >&2
    exit 2;;
  *)
    PIP_ARGS=(-c "$SRC/constraints.txt")
    echo "# pins: release '$CODENAME' is not one this script knows (bookworm, trixie): using the versions CI" \
         "tests (constraints.txt), numpy 2; if an apt picamera2 built against numpy 1 fails to import, pin numpy<2" >&2;;
esac
run "$PREFIX/venv/bin/pip" install --upgrade "${PIP_ARGS[@]}" "$SRC[mqtt]"   # + paho-mqtt: a sensor reports to a broker
if [ "$DRY" = 0 ]; then
  echo "# installed: $("$PREFIX/venv/bin/python" -c 'import numpy, cv2; print("numpy", numpy.__version__, "opencv", cv2.__version__)')"
fi

UNIT="emoedge-$MODE.service"
RENDERED="$(mktemp)"
trap 'rm -f "$RENDERED"' EXIT
SETS=(--set "deployment.data_dir=$DATA")
[ "$MODE" = sensor ] && SETS+=(--set "runtime.db=$DATA/summaries.sqlite")
[ -n "$PURPOSE" ] && SETS+=(--set "deployment.purpose=$PURPOSE")
[ -n "$JURISDICTION" ] && SETS+=(--set "deployment.jurisdiction=$JURISDICTION")
if [ "$MODE" = sensor ] && { [ -z "$PURPOSE" ] || [ -z "$JURISDICTION" ]; }; then
  echo "# WARNING: a classroom sensor does not start without --purpose and --jurisdiction (README.md, Lawful use);" \
       "the unit is installed, and exits with code 2 until they are given" >&2
fi
RENDER=("$PREFIX/venv/bin/emoedge" profile unit "$PROFILE" --template "$SRC/deploy/systemd/$UNIT" --prefix "$PREFIX"
        "${SETS[@]}")
echo "+ ${RENDER[*]} > $RENDERED"
if [ "$DRY" = 0 ]; then
  "${RENDER[@]}" > "$RENDERED"
else  # the venv does not exist in a dry run: show the template's paths instead
  sed -e "s#/opt/emoedge#$PREFIX#g" -e "s#/data/emoedge#$DATA#g" -e "s#/var/lib/emoedge#$DATA#g" \
      -e "s#--profile [A-Za-z0-9._-]*#--profile $PROFILE#" "$SRC/deploy/systemd/$UNIT" > "$RENDERED"
fi
if cmp -s "$RENDERED" "/etc/systemd/system/$UNIT" 2>/dev/null; then
  echo "# $UNIT is up to date"
else
  run install -m 0644 "$RENDERED" "/etc/systemd/system/$UNIT"
  if [ -d /run/systemd/system ]; then
    run systemctl daemon-reload
  else  # an image being built, or a chroot (deploy/check-arm64.sh): enabling works without a running systemd
    echo "# systemd is not running here (a chroot or an image build): no daemon-reload; the unit starts at boot"
  fi
fi
if [ -f /etc/systemd/journald.conf.d/emoedge.conf ]; then
  echo "# journald size cap present"
else
  run mkdir -p /etc/systemd/journald.conf.d
  run sh -c 'printf "[Journal]\nSystemMaxUse=50M\n" > /etc/systemd/journald.conf.d/emoedge.conf'
fi
run systemctl enable "$UNIT"
if run "$PREFIX/venv/bin/emoedge" doctor --profile "$PROFILE" "${SETS[@]}"; then
  echo "done: start it with 'sudo systemctl start $UNIT'; follow it with 'journalctl -u $UNIT -f'"
else
  code=$?
  echo "install.sh: 'emoedge doctor' failed (exit $code, its report above): $UNIT is installed and enabled, but" \
       "fix what it says, run this script again, and only then start it" >&2
  exit "$code"
fi
