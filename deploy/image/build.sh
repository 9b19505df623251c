#!/usr/bin/env bash
# A Raspberry Pi SD-card image with emoedge installed (a classroom sensor; Pi 3/4/5, 64-bit), built
# here from Debian's own packages and assembled without loop devices or mounts.
#
#   sudo bash deploy/image/build.sh --out DIR [--cache DIR] [--release trixie] [--mirror URL]
#                                   [--security URL|none] [--root-free-mb N] [--xz-level 0-9] [--keep-raw]
#
# Makes DIR/emoedge-VERSION-RELEASE-arm64.img.xz, its .bmap (bmaptool copy) and .sha256, and
# DIR/*.manifest.txt (packages, Python packages and every file of the root, for comparing two builds).
#
# What goes in: a Debian RELEASE arm64 root by debootstrap under qemu-user (cached under --cache,
# default /var/cache/emoedge-image: the second build skips it); the Raspberry Pi boot firmware, kernel
# and initrd from Debian's packages (raspi-firmware, linux-image-arm64: raspi-firmware's kernel and
# initramfs hooks copy vmlinuz, initrd.img, the Pi .dtb files, config.txt and cmdline.txt to
# /boot/firmware, as in Debian's own raspi images); systemd-networkd (eth0 by DHCP; Wi-Fi through
# wpa_supplicant@wlan0, written by the first-boot file), openssh-server (no password log-in; host keys
# made on each card's first boot), emoedge by deploy/install.sh --board rpi --mode sensor
# --no-picamera2 (the device set: no TensorFlow), the shipped models (in the package), BlazeFace by
# `emoedge models fetch` (sha256 pinned) into /opt/emoedge/models, the systemd units, and the
# first-boot unit with its commented example (boot partition: emoedge.yaml.example).
# The emoedge service is NOT enabled in the image: the first-boot file enables it (deploy/image/README.md).
#
# Disk: MBR; p1 FAT32 "RASPIFIRM" (4 MiB..516 MiB) mounted at /boot/firmware; p2 ext4 "RASPIROOT"
# (the root, sized to its content + --root-free-mb, default 1024; grown to the card on first boot).
# Reproducible: SOURCE_DATE_EPOCH (default: the checkout's last commit time) fixes the file times,
# the file-system ids (ext4 UUID and hash seed, FAT volume id, MBR id) and the archives' times.
# Exit codes: 0 built; 1 a step failed (its log is named); 2 bad usage; 77 this machine cannot build
# it (not root, not x86_64, no binfmt_misc): the reason is printed.
# Heavy steps run under `nice -n 19` (a benchmark may share the machine).
set -euo pipefail

RELEASE=trixie CACHE=/var/cache/emoedge-image OUT='' MIRROR=http://deb.debian.org/debian SECURITY=auto
ROOT_FREE_MB=1024 XZ_LEVEL=6 KEEP_RAW=0 CPU=cortex-a72 BOOT_MB=512
SRC="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$SRC/deploy/image"
SHARED="${EMOEDGE_SHARED:-$SRC/../shared}"
usage() { echo "build.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || usage "--out needs a folder"; OUT="$2"; shift 2;;
    --cache) [ $# -ge 2 ] || usage "--cache needs a folder"; CACHE="$2"; shift 2;;
    --release) [ $# -ge 2 ] || usage "--release needs a name"; RELEASE="$2"; shift 2;;
    --mirror) [ $# -ge 2 ] || usage "--mirror needs a URL"; MIRROR="$2"; shift 2;;
    --security) [ $# -ge 2 ] || usage "--security needs a URL or none"; SECURITY="$2"; shift 2;;
    --root-free-mb) [ $# -ge 2 ] || usage "--root-free-mb needs a number"; ROOT_FREE_MB="$2"; shift 2;;
    --xz-level) [ $# -ge 2 ] || usage "--xz-level needs 0-9"; XZ_LEVEL="$2"; shift 2;;
    --keep-raw) KEEP_RAW=1; shift;;
    -h|--help) sed -n '2,30p' "$0"; exit 0;;
    *) usage "unknown option $1 (see --help)";;
  esac
done
[ -n "$OUT" ] || usage "--out DIR is required (where the image goes)"
case "$RELEASE" in trixie) ;; *) usage "--release: only trixie is built (raspi-firmware + Python 3.13 + the pins in constraints.txt), got '$RELEASE'";; esac
case "$MIRROR" in http://*|https://*) ;; *) usage "--mirror must be an http(s) URL, got '$MIRROR'";; esac
[[ "$ROOT_FREE_MB" =~ ^[0-9]{2,6}$ ]] || usage "--root-free-mb must be a number of MB (10-999999), got '$ROOT_FREE_MB'"
[[ "$XZ_LEVEL" =~ ^[0-9]$ ]] || usage "--xz-level must be 0-9, got '$XZ_LEVEL'"
if [ "$SECURITY" = auto ]; then  # deb.debian.org/debian -> deb.debian.org/debian-security (also snapshot's archive/debian/TS)
  SECURITY="$(echo "$MIRROR" | sed -E 's#/debian(/|$)#/debian-security\1#')"
  [ "$SECURITY" = "$MIRROR" ] && SECURITY=none
fi

skip() { echo "build.sh: SKIPPED: $*" >&2; exit 77; }
say() { echo "== $(date -u +%H:%M:%S) $*"; }
die() { echo "build.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || skip "needs root (debootstrap, chroot, file ownership in the image); run it with sudo"
[ "$(uname -m)" = x86_64 ] || skip "builds the arm64 root under qemu-user on an x86_64 host"
NICE=(nice -n 19)
T0=$(date +%s)

# 1. host tools (Debian's registry)
NEED=()
command -v qemu-aarch64-static >/dev/null || NEED+=(qemu-user-static)
command -v update-binfmts >/dev/null || NEED+=(binfmt-support)
command -v debootstrap >/dev/null || NEED+=(debootstrap)
command -v mcopy >/dev/null || NEED+=(mtools)
command -v mkfs.vfat >/dev/null || NEED+=(dosfstools)
command -v mkfs.ext4 >/dev/null || NEED+=(e2fsprogs)
command -v sfdisk >/dev/null || NEED+=(fdisk)
command -v xz >/dev/null || NEED+=(xz-utils)
command -v bmaptool >/dev/null || NEED+=(bmap-tools)
command -v python3 >/dev/null || NEED+=(python3)
if [ ${#NEED[@]} -gt 0 ]; then
  say "installing ${NEED[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${NICE[@]}" apt-get install -y -qq "${NEED[@]}" >/dev/null
fi
# shellcheck source=deploy/qemu-user.sh
. "$SRC/deploy/qemu-user.sh"
binfmt_aarch64_ready

VERSION="$(sed -nE 's/^version *= *"([^"]+)".*/\1/p' "$SRC/pyproject.toml" | head -1)"
COMMIT="$(git -C "$SRC" rev-parse --short=10 HEAD 2>/dev/null || echo unknown)"
DIRTY="$(git -C "$SRC" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo -dirty || true)"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH="$(git -C "$SRC" log -1 --format=%ct 2>/dev/null || echo 1767225600)"
fi
[[ "$SOURCE_DATE_EPOCH" =~ ^[0-9]+$ ]] || usage "SOURCE_DATE_EPOCH must be seconds since 1970, got '$SOURCE_DATE_EPOCH'"
export SOURCE_DATE_EPOCH
NAME="emoedge-$VERSION-$RELEASE-arm64"
mkdir -p "$OUT" "$CACHE"
OUT="$(cd "$OUT" && pwd)"
CACHE="$(cd "$CACHE" && pwd)"
LOG="$OUT/$NAME.build.log"
: > "$LOG"
say "emoedge $VERSION ($COMMIT$DIRTY), $RELEASE arm64, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH, cache $CACHE, log $LOG"

# the Debian packages of the image (the base root is cached; a change of this list rebuilds it)
PKGS=(systemd-sysv udev kmod dbus systemd-timesyncd systemd-resolved iproute2 iputils-ping netbase ifupdown-
      openssh-server wpasupplicant iw wireless-regdb firmware-brcm80211 raspi-firmware linux-image-arm64
      initramfs-tools zstd dosfstools e2fsprogs fdisk cloud-guest-utils tzdata python3 python3-venv python3-pip
      ca-certificates procps less nano sqlite3 v4l-utils libcamera-ipa libcamera-tools python3-libcamera)
BASE="$CACHE/$RELEASE-base"
KEY="$(printf '%s\n' "$RELEASE" "$MIRROR" "$SECURITY" "${PKGS[*]}" "$(cat "$HERE/rootfs-raspi-firmware")" | sha256sum | cut -c1-16)"

# chroot helpers: mounts undone on exit; an ARM /proc/cpuinfo (LiteRT under qemu 7.2); a clean environment
MOUNTS=()
cleanup() { for ((i=${#MOUNTS[@]}-1; i>=0; i--)); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done; MOUNTS=(); }
trap cleanup EXIT
bind() { mount "$@"; MOUNTS+=("${@: -1}"); }
CPUINFO="$CACHE/cpuinfo-$CPU"
: > "$CPUINFO"
for n in 0 1 2 3; do
  printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' "$n" >> "$CPUINFO"
done
enter() {  # mounts for chroot work in $1
  bind -t proc proc "$1/proc"
  bind --bind /dev "$1/dev"
  bind -t sysfs sysfs "$1/sys"
  bind --bind "$CPUINFO" "$1/proc/cpuinfo"
  rm -f "$1/etc/resolv.conf" && cp -L /etc/resolv.conf "$1/etc/resolv.conf"
}
in_root() {  # in_root ROOT CMD...: niced, env -i, no service may start (policy-rc.d)
  local r="$1"; shift
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    QEMU_CPU="$CPU" DEBIAN_FRONTEND=noninteractive SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    "${NICE[@]}" chroot "$r" "$@"
}
step() {  # step ROOT WHAT CMD...: output to the log; on failure its tail and the log named
  local r="$1" what="$2"; shift 2
  echo "### $what" >> "$LOG"
  in_root "$r" "$@" >> "$LOG" 2>&1 || { tail -25 "$LOG" >&2; die "$what failed (log: $LOG)"; }
}
sources() {  # sources ROOT MIRROR SECURITY
  rm -f "$1/etc/apt/sources.list"
  { echo "Types: deb"; echo "URIs: $2"; echo "Suites: $RELEASE $RELEASE-updates"
    echo "Components: main non-free-firmware"; echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
    if [ "$3" != none ]; then
      echo; echo "Types: deb"; echo "URIs: $3"; echo "Suites: $RELEASE-security"
      echo "Components: main non-free-firmware"; echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
    fi; } > "$1/etc/apt/sources.list.d/debian.sources"
}

# 2. the base root: Debian + kernel + firmware, cached (key: release, mirrors, package list)
if [ -f "$BASE/.emoedge-base-ok" ] && [ "$(cat "$BASE/.emoedge-base-ok")" = "$KEY" ]; then
  say "reusing the base root $BASE (key $KEY)"
else
  say "building the base root (debootstrap + ${#PKGS[@]} packages under qemu-user; once, then cached)"
  TB=$(date +%s)
  rm -rf "$BASE.partial" && mkdir -p "$CACHE"
  echo "### debootstrap first stage" >> "$LOG"
  "${NICE[@]}" debootstrap --arch=arm64 --foreign --variant=minbase --components=main,non-free-firmware \
    --include=ca-certificates,passwd,debian-archive-keyring "$RELEASE" "$BASE.partial" "$MIRROR" >> "$LOG" 2>&1 \
    || { tail -25 "$LOG" >&2; die "debootstrap failed (log: $LOG)"; }
  step "$BASE.partial" "debootstrap second stage" /debootstrap/debootstrap --second-stage
  sources "$BASE.partial" "$MIRROR" "$SECURITY"
  # raspi-firmware's hooks write cmdline.txt from this file (root by label, as Debian's raspi images)
  install -m 0644 "$HERE/rootfs-raspi-firmware" "$BASE.partial/etc/default/raspi-firmware"
  mkdir -p "$BASE.partial/boot/firmware"
  printf '#!/bin/sh\nexit 101\n' > "$BASE.partial/usr/sbin/policy-rc.d" && chmod 755 "$BASE.partial/usr/sbin/policy-rc.d"
  enter "$BASE.partial"
  step "$BASE.partial" "apt-get update" apt-get update
  step "$BASE.partial" "apt-get install ${PKGS[*]}" apt-get install -y --no-install-recommends \
    -o Dpkg::Options::=--force-confold "${PKGS[@]}"
  step "$BASE.partial" "apt-get clean" apt-get clean
  cleanup
  echo "$KEY" > "$BASE.partial/.emoedge-base-ok"
  rm -rf "$BASE" && mv "$BASE.partial" "$BASE"
  say "base root built in $(( $(date +%s) - TB )) s"
fi

# 3. the image's root: a fresh copy of the base, configured, emoedge installed
WORK="$CACHE/work"
ROOT="$WORK/root"
rm -rf "$WORK" && mkdir -p "$WORK"
say "copying the base root to $ROOT"
"${NICE[@]}" cp -a "$BASE" "$ROOT"
rm -f "$ROOT/.emoedge-base-ok"
enter "$ROOT"
EXTRA_CAS=(/usr/local/share/ca-certificates/*.crt)   # a TLS-inspecting proxy's CAs: for the build only, removed below
if [ -e "${EXTRA_CAS[0]}" ]; then
  mkdir -p "$ROOT/usr/local/share/ca-certificates/emoedge-build"
  cp "${EXTRA_CAS[@]}" "$ROOT/usr/local/share/ca-certificates/emoedge-build/"
  step "$ROOT" "update-ca-certificates (build-time CAs)" update-ca-certificates
fi
bash "$HERE/rootfs.sh" "$ROOT" "$HERE" >> "$LOG" 2>&1 || { tail -25 "$LOG" >&2; die "rootfs.sh failed (log: $LOG)"; }

say "deploy/install.sh --board rpi --mode sensor --no-picamera2 in the root"
TI=$(date +%s)
mkdir -p "$ROOT/opt/src/emoedge" "$CACHE/pip" "$ROOT/root/.cache/pip"
tar -C "$SRC" --exclude=./.venv --exclude=./.git --exclude='*.egg-info' --exclude=__pycache__ --exclude=./build \
  --exclude=./dist -cf - . | tar -C "$ROOT/opt/src/emoedge" -xf -
bind --bind "$CACHE/pip" "$ROOT/root/.cache/pip"
echo "### install.sh" >> "$LOG"
if ! in_root "$ROOT" bash /opt/src/emoedge/deploy/install.sh --board rpi --mode sensor --no-picamera2 >> "$LOG" 2>&1; then
  # the only problem allowed: no purpose/jurisdiction yet (the first-boot file gives them)
  FAILS="$(sed -n '/### install.sh/,$p' "$LOG" | grep '^\[FAIL\]' || true)"
  if ! grep -q "'emoedge doctor' failed" "$LOG" || [ "$(echo "$FAILS" | grep -vc '^\[FAIL\] lawful use')" != 0 ]; then
    tail -30 "$LOG" >&2; die "install.sh failed in the root (log: $LOG)"
  fi
  echo "# doctor's one problem: no purpose/jurisdiction yet; the first-boot file gives them" >> "$LOG"
fi
umount "$ROOT/root/.cache/pip" && unset 'MOUNTS[${#MOUNTS[@]}-1]'
say "installed in $(( $(date +%s) - TI )) s: $(grep -E '^# installed:' "$LOG" | tail -1)"

say "BlazeFace (emoedge models fetch blazeface, sha256 pinned) into /opt/emoedge/models"
echo "### models fetch" >> "$LOG"
if in_root "$ROOT" /opt/emoedge/venv/bin/emoedge models fetch blazeface --dest /opt/emoedge/models >> "$LOG" 2>&1; then
  echo "   fetched from the official location"
elif [ -f "$SHARED/detectors/face_detection_short_range.tflite" ]; then
  mkdir -p "$ROOT/tmp/blazeface" && cp "$SHARED/detectors/face_detection_short_range.tflite" "$ROOT/tmp/blazeface/"
  step "$ROOT" "models fetch (offline copy)" /opt/emoedge/venv/bin/emoedge models fetch blazeface \
    --dest /opt/emoedge/models --base-url file:///tmp/blazeface
  echo "   the official location was not reachable: fetched from the offline copy in $SHARED/detectors (same sha256)"
else
  die "BlazeFace: the download failed and no offline copy in $SHARED/detectors (log: $LOG)"
fi
if [ -d "$ROOT/usr/local/share/ca-certificates/emoedge-build" ]; then
  rm -rf "$ROOT/usr/local/share/ca-certificates/emoedge-build"
  step "$ROOT" "update-ca-certificates --fresh (build-time CAs removed)" update-ca-certificates --fresh
fi
echo "### initrd modules" >> "$LOG"
in_root "$ROOT" sh -c 'lsinitramfs /boot/initrd.img-* | grep -E "virtio_(blk|pci|mmio)|/(mmc_block|sdhci-iproc|bcm2835)" | sed "s#.*/##" | sort -u | tr "\n" " "' \
  > "$WORK/initrd-modules.txt" 2>> "$LOG" || true
say "initrd holds: $(cat "$WORK/initrd-modules.txt")"
bash "$HERE/rootfs-finish.sh" "$ROOT" "$HERE" "$VERSION" "$COMMIT$DIRTY" "$MIRROR" "$SECURITY" >> "$LOG" 2>&1 \
  || { tail -25 "$LOG" >&2; die "rootfs-finish.sh failed (log: $LOG)"; }
cleanup
rm -f "$ROOT/etc/resolv.conf" && ln -s ../run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"

# 4. manifest (packages, Python packages, every file), then fixed times
say "manifest and fixed file times"
mkdir -p "$WORK/firmware"
cp -a "$ROOT/boot/firmware/." "$WORK/firmware/"
find "$ROOT/boot/firmware" -mindepth 1 -delete
python3 "$HERE/manifest.py" write "$ROOT" "$WORK/firmware" "$OUT/$NAME.manifest.txt"
find "$ROOT" "$WORK/firmware" -xdev -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} + 2>/dev/null || true

# 5. the disk image: FAT (mkfs.vfat + mcopy) and ext4 (mkfs.ext4 -d) made as files, joined by sfdisk + dd
say "assembling $NAME.img"
IDS="$(python3 "$HERE/manifest.py" ids "$SOURCE_DATE_EPOCH")"   # VOLID ROOT_UUID HASH_SEED DISK_ID
read -r VOLID ROOT_UUID HASH_SEED DISK_ID <<< "$IDS"
BOOTIMG="$WORK/boot.vfat" ROOTIMG="$WORK/root.ext4" IMG="$OUT/$NAME.img"
rm -f "$BOOTIMG" "$ROOTIMG" "$IMG"
mkfs.vfat -F 32 -n RASPIFIRM -i "$VOLID" --invariant -C "$BOOTIMG" $((BOOT_MB * 1024)) >> "$LOG"
MTOOLS_SKIP_CHECK=1 mcopy -s -p -m -Q -i "$BOOTIMG" "$WORK/firmware/"* ::/
USED_KB=$(du -s -k --apparent-size "$ROOT" | cut -f1)
ROOT_MB=$(( (USED_KB * 12 / 10 / 1024 + ROOT_FREE_MB + 3) / 4 * 4 ))
E2FSPROGS_FAKE_TIME="$SOURCE_DATE_EPOCH" "${NICE[@]}" mkfs.ext4 -q -F -L RASPIROOT -U "$ROOT_UUID" \
  -E "hash_seed=$HASH_SEED,root_owner=0:0" -d "$ROOT" "$ROOTIMG" "${ROOT_MB}M" >> "$LOG" 2>&1 \
  || { tail -25 "$LOG" >&2; die "mkfs.ext4 failed (log: $LOG)"; }
START1=8192 SIZE1=$((BOOT_MB * 2048))
START2=$((START1 + SIZE1)) SIZE2=$((ROOT_MB * 2048))
truncate -s $(( (START2 + SIZE2) * 512 )) "$IMG"
printf 'label: dos\nlabel-id: 0x%s\nunit: sectors\n\nstart=%s, size=%s, type=c, bootable\nstart=%s, size=%s, type=83\n' \
  "$DISK_ID" "$START1" "$SIZE1" "$START2" "$SIZE2" | sfdisk -q "$IMG" >> "$LOG"
dd if="$BOOTIMG" of="$IMG" bs=1M seek=$((START1 / 2048)) conv=notrunc,sparse status=none
dd if="$ROOTIMG" of="$IMG" bs=1M seek=$((START2 / 2048)) conv=notrunc,sparse status=none
touch -d "@$SOURCE_DATE_EPOCH" "$IMG"
rm -f "$BOOTIMG" "$ROOTIMG"

# 6. .bmap, .img.xz (multi-threaded xz with a fixed block size: the same bytes for any thread count), .sha256
say "bmap, xz -$XZ_LEVEL, sha256"
bmaptool -q create -o "$OUT/$NAME.img.bmap" "$IMG"
rm -f "$IMG.xz"
"${NICE[@]}" xz -T2 --block-size=64MiB "-$XZ_LEVEL" -c "$IMG" > "$IMG.xz"
touch -d "@$SOURCE_DATE_EPOCH" "$IMG.xz" "$OUT/$NAME.img.bmap"
(cd "$OUT" && sha256sum "$NAME.img.xz" > "$NAME.img.xz.sha256" && sha256sum "$NAME.img" >> "$NAME.img.xz.sha256")
[ "$KEEP_RAW" = 1 ] || rm -f "$IMG"
rm -rf "$WORK"
say "done in $(( $(date +%s) - T0 )) s: $OUT/$NAME.img.xz ($(du -h --apparent-size "$IMG.xz" | cut -f1)," \
    "$(( (START2 + SIZE2) / 2048 )) MiB raw: boot $BOOT_MB MiB, root $ROOT_MB MiB)"
echo "   write it: bmaptool copy $OUT/$NAME.img.xz /dev/sdX   (or Raspberry Pi Imager / xzcat | dd)"
