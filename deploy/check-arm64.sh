#!/usr/bin/env bash
# The Raspberry Pi install path, proven on arm64 here: a Debian arm64 root under qemu-user for the
# Raspberry Pi OS generation asked, the project installed into it by deploy/install.sh exactly as
# on a Pi, then `emoedge doctor`, `emoedge classify` on the shared photos and `emoedge run` on the
# shared video with the shipped models, compared with the same commands on x86 (the same package
# versions, in an x86 venv). Exit 0 only if every label and probability is the same.
#
#   sudo bash deploy/check-arm64.sh [--release bookworm|trixie] [--cache DIR] [--cpu cortex-a72|cortex-a76]
#                                   [--shared DIR] [--models default,onepass,fast,ferplus8] [--frames N] [--mirror URL]
#
# Raspberry Pi OS is Debian plus Raspberry Pi's own repository: bookworm (Debian 12, Python 3.11,
# numpy 1.24 in apt) and trixie (Debian 13, Python 3.13, numpy 2.2; the current Pi OS, the default).
# Root needed (debootstrap, chroot, mounts). Idempotent: the root is cached under --cache
# (default /var/cache/emoedge-arm64/RELEASE) and reused, so a second run takes minutes.
# Exit codes: 0 outputs identical; 1 a mismatch or a failed step; 2 bad usage; 77 this machine cannot
# run it (not root, no binfmt_misc): the reason is printed.
#
# Emulation traps handled here (not project bugs): qemu 7.2 shows the host's x86 /proc/cpuinfo, on
# which LiteRT segfaults at interpreter creation, so an ARM cpuinfo is bound over it inside the root;
# with qemu's default CPU model XNNPACK's int8 outputs are wrong, so QEMU_CPU is set (cortex-a72 = Pi 4,
# cortex-a76 = Pi 5); the host's environment (pip and proxy variables) never reaches the root
# (env -i). Emulated inference is 100-500x slower than a board: this checks correctness, never time.
# python3-picamera2 is not in Debian (Raspberry Pi's repository has it): a STAND-IN package of that
# name, with no code, lets install.sh's apt step pass; the camera itself is not tested here.
set -euo pipefail

RELEASE=trixie CACHE=/var/cache/emoedge-arm64 CPU=cortex-a72 MODELS=default,onepass,fast,ferplus8 FRAMES=20
MIRROR=http://deb.debian.org/debian
SRC="$(cd "$(dirname "$0")/.." && pwd)"
SHARED="${EMOEDGE_SHARED:-$SRC/../shared}"
while [ $# -gt 0 ]; do
  case "$1" in
    --release) RELEASE="$2"; shift 2;;
    --cache) CACHE="$2"; shift 2;;
    --cpu) CPU="$2"; shift 2;;
    --shared) SHARED="$2"; shift 2;;
    --models) MODELS="$2"; shift 2;;
    --frames) FRAMES="$2"; shift 2;;
    --mirror) MIRROR="$2"; shift 2;;
    -h|--help) sed -n '2,26p' "$0"; exit 0;;
    *) echo "check-arm64.sh: unknown option $1 (see --help)" >&2; exit 2;;
  esac
done
case "$RELEASE" in bookworm|trixie) ;; *) echo "check-arm64.sh: --release must be bookworm or trixie, got '$RELEASE'" >&2; exit 2;; esac
case "$CPU" in cortex-a72|cortex-a76|cortex-a53|max) ;; *) echo "check-arm64.sh: --cpu must be cortex-a72, cortex-a76, cortex-a53 or max, got '$CPU'" >&2; exit 2;; esac

skip() { echo "check-arm64.sh: SKIPPED: $*" >&2; exit 77; }
say() { echo "== $(date -u +%H:%M:%S) $*"; }
[ "$(id -u)" = 0 ] || skip "needs root (debootstrap, chroot, mounts); run it with sudo"
[ "$(uname -m)" = x86_64 ] || skip "compares an emulated arm64 root with this machine: run it on an x86_64 host"
[ -d "$SHARED/media" ] || { echo "check-arm64.sh: $SHARED/media: not found (the shared photos and video; --shared DIR or EMOEDGE_SHARED)" >&2; exit 2; }
T0=$(date +%s)

# 1. host tools: qemu-user-static, binfmt-support, debootstrap (Debian's registry)
NEED=()
command -v qemu-aarch64-static >/dev/null || NEED+=(qemu-user-static)
command -v update-binfmts >/dev/null || NEED+=(binfmt-support)
command -v debootstrap >/dev/null || NEED+=(debootstrap)
if [ ${#NEED[@]} -gt 0 ]; then
  say "installing ${NEED[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${NEED[@]}" >/dev/null
fi
# shellcheck source=deploy/qemu-user.sh
. "$SRC/deploy/qemu-user.sh"
binfmt_aarch64_ready
say "qemu $(qemu-aarch64-static --version | head -1 | awk '{print $3}'), QEMU_CPU=$CPU, release $RELEASE"

# 2. the arm64 root, cached
ROOT="$CACHE/$RELEASE"
mkdir -p "$CACHE"
if [ ! -f "$ROOT/.emoedge-root-ok" ]; then
  say "building the $RELEASE arm64 root in $ROOT (once; cached)"
  rm -rf "$ROOT.partial"
  debootstrap --arch=arm64 --foreign --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates,systemd,passwd "$RELEASE" "$ROOT.partial" "$MIRROR" >/dev/null
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin QEMU_CPU="$CPU" chroot "$ROOT.partial" /debootstrap/debootstrap --second-stage >/dev/null
  echo "deb $MIRROR $RELEASE main" > "$ROOT.partial/etc/apt/sources.list"
  touch "$ROOT.partial/.emoedge-root-ok"
  rm -rf "$ROOT"
  mv "$ROOT.partial" "$ROOT"
else
  say "reusing the $RELEASE arm64 root in $ROOT"
fi

# 3. mounts (undone on exit), an ARM /proc/cpuinfo, DNS
MOUNTS=()
cleanup() { for ((i=${#MOUNTS[@]}-1; i>=0; i--)); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done; }
trap cleanup EXIT
bind() { mount "$@"; MOUNTS+=("${@: -1}"); }
bind -t proc proc "$ROOT/proc"
bind --bind /dev "$ROOT/dev"
bind -t sysfs sysfs "$ROOT/sys"
CPUINFO="$CACHE/cpuinfo-$CPU"
PART=0xd08; [ "$CPU" = cortex-a76 ] && PART=0xd0b; [ "$CPU" = cortex-a53 ] && PART=0xd03
: > "$CPUINFO"
for n in 0 1 2 3; do
  printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: %s\nCPU revision\t: 3\n\n' "$n" "$PART" >> "$CPUINFO"
done
bind --bind "$CPUINFO" "$ROOT/proc/cpuinfo"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
in_root() {  # a command inside the root, with a clean environment; pip trusts the root's own CA store
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    QEMU_CPU="$CPU" PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    chroot "$ROOT" "$@"
}
# a machine behind a TLS-inspecting proxy trusts extra CAs (/usr/local/share/ca-certificates): the root
# needs them too to reach PyPI, as a Pi on that network would; nothing else of the host's set-up goes in
EXTRA_CAS=(/usr/local/share/ca-certificates/*.crt)
if [ -e "${EXTRA_CAS[0]}" ]; then
  mkdir -p "$ROOT/usr/local/share/ca-certificates"
  cp "${EXTRA_CAS[@]}" "$ROOT/usr/local/share/ca-certificates/"
  in_root update-ca-certificates >/dev/null 2>&1
  say "the host's extra CA certificates (${#EXTRA_CAS[@]}) trusted in the root too"
fi
say "in the root: $(in_root uname -m), $(in_root python3 --version)"

# 4. the stand-in python3-picamera2 (only if the real one is not installed)
if ! in_root dpkg-query -W -f='${Version}' python3-picamera2 >/dev/null 2>&1; then
  STAND="$CACHE/standin/python3-picamera2"
  rm -rf "$STAND" && mkdir -p "$STAND/DEBIAN" "$STAND/usr/share/doc/python3-picamera2"
  cat > "$STAND/DEBIAN/control" <<EOF
Package: python3-picamera2
Version: 0.0~emoedge-standin
Architecture: all
Maintainer: emoedge check-arm64.sh <nobody@localhost>
Description: STAND-IN for Raspberry Pi's python3-picamera2 (no code)
 Installed by emoedge's deploy/check-arm64.sh so that deploy/install.sh's apt step passes in an
 emulated Debian root, which has no Raspberry Pi repository. It provides no camera support.
EOF
  echo "STAND-IN package made by emoedge deploy/check-arm64.sh; not picamera2." > "$STAND/usr/share/doc/python3-picamera2/README"
  dpkg-deb --build "$STAND" "$CACHE/standin/python3-picamera2_standin_all.deb" >/dev/null
  cp "$CACHE/standin/python3-picamera2_standin_all.deb" "$ROOT/tmp/"
  in_root dpkg -i /tmp/python3-picamera2_standin_all.deb >/dev/null
  say "installed the STAND-IN python3-picamera2 (no code; the camera is not tested here)"
fi

# 5. the project and the inputs, copied fresh
rm -rf "$ROOT/opt/src/emoedge" "$ROOT/opt/inputs" && mkdir -p "$ROOT/opt/src/emoedge" "$ROOT/opt/inputs"
tar -C "$SRC" --exclude=./.venv --exclude=./.git --exclude='*.egg-info' --exclude=__pycache__ -cf - . \
  | tar -C "$ROOT/opt/src/emoedge" -xf -
cp "$SHARED"/media/*.jpg "$SHARED"/media/*.png "$SHARED"/media/*.mp4 "$ROOT/opt/inputs/"

# 6. install.sh, exactly as on a Pi (a sensor; the systemd unit is installed, not started)
say "deploy/install.sh --board rpi --mode sensor in the root"
T1=$(date +%s)
in_root bash /opt/src/emoedge/deploy/install.sh --board rpi --mode sensor --purpose "arm64 check" \
  --jurisdiction none > "$CACHE/install-$RELEASE.log" 2>&1 || { tail -30 "$CACHE/install-$RELEASE.log"; echo "check-arm64.sh: install.sh failed in the $RELEASE root (log: $CACHE/install-$RELEASE.log)" >&2; exit 1; }
grep -E '^# (pins|installed):' "$CACHE/install-$RELEASE.log" || true
say "installed in $(( $(date +%s) - T1 )) s"
in_root /opt/emoedge/venv/bin/pip freeze --local --exclude emoedge > "$CACHE/freeze-$RELEASE.txt"
echo "   $(tr '\n' ' ' < "$CACHE/freeze-$RELEASE.txt")"

# 7. the outputs on arm64
say "emoedge doctor, classify ($(ls "$ROOT/opt/inputs" | grep -c -v mp4) photos) and run ($FRAMES frames) with $MODELS on arm64"
T2=$(date +%s)
in_root /opt/emoedge/venv/bin/python /opt/src/emoedge/deploy/arm64_outputs.py collect --inputs /opt/inputs \
  --out /tmp/outputs-arm64.json --models "$MODELS" --frames "$FRAMES" > "$CACHE/outputs-$RELEASE.log" 2>&1 \
  || { tail -30 "$CACHE/outputs-$RELEASE.log"; echo "check-arm64.sh: the commands failed on arm64 (log: $CACHE/outputs-$RELEASE.log)" >&2; exit 1; }
cp "$ROOT/tmp/outputs-arm64.json" "$CACHE/outputs-arm64-$RELEASE.json"
say "arm64 outputs in $(( $(date +%s) - T2 )) s"

# 8. the same on x86, with the same package versions
VENV="$CACHE/x86-$RELEASE-venv"
PY=python3
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
env -u PIP_INDEX_URL -u PIP_CONSTRAINT "$VENV/bin/pip" install -q -r "$CACHE/freeze-$RELEASE.txt"
env -u PIP_CONSTRAINT "$VENV/bin/pip" install -q --no-deps --force-reinstall "$SRC"
mkdir -p "$CACHE/x86-inputs" && cp "$ROOT"/opt/inputs/* "$CACHE/x86-inputs/"
"$VENV/bin/python" "$SRC/deploy/arm64_outputs.py" collect --inputs "$CACHE/x86-inputs" \
  --out "$CACHE/outputs-x86-$RELEASE.json" --models "$MODELS" --frames "$FRAMES" > "$CACHE/outputs-x86-$RELEASE.log" 2>&1

# 9. compare
say "comparing arm64 ($RELEASE, $CPU) with x86"
set +e
"$VENV/bin/python" "$SRC/deploy/arm64_outputs.py" compare "$CACHE/outputs-arm64-$RELEASE.json" "$CACHE/outputs-x86-$RELEASE.json"
RC=$?
set -e
say "done in $(( $(date +%s) - T0 )) s: $([ $RC = 0 ] && echo PASSED || echo FAILED)"
exit $RC
