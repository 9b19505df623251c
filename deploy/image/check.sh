#!/usr/bin/env bash
# Boot-test an emoedge SD-card image (deploy/image/build.sh) under qemu-system-aarch64, no mounts.
#
#   sudo bash deploy/image/check.sh IMG.img.xz|IMG.img [--shared DIR] [--work DIR] [--timeout S] [--smp N]
#                                   [--mem MB] [--keep] [--only good|bad]
#
# The `virt` machine, -cpu cortex-a72, TCG (no KVM here), with the image's OWN kernel and initrd (read
# from its boot partition with mtools) and the whole image as a virtio disk (its root partition by
# label, its boot partition at /boot/firmware), each time on a COPY of the image:
#   good: a first-boot emoedge.yaml (classroom sensor, purpose and jurisdiction, time zone, device id,
#         the shared video clip on the boot partition as `source:` in place of a camera) put on the
#         copy's boot partition with mcopy; boot 1 must apply it and start the emoedge unit as its
#         user with its sandboxing and write interval summaries with wall-clock times; boot 2 (same
#         disk) must be clean: nothing re-applied, no failed unit, the unit running again.
#   bad:  an emoedge.yaml with an unknown key, a bad MQTT URL and no purpose on the classroom profile:
#         the three reported on the console and in emoedge-firstboot.txt on the boot partition, the
#         emoedge unit not enabled and not started, no summaries written.
# A hook unit (check-hook.sh, written into the copy with debugfs -w, never part of the image) echoes
# the state to the serial console and powers off. After each run the copy is read back without
# mounts: the boot partition with mtools, the ext4 root with debugfs.
# Exit codes: 0 passed; 1 a check failed (each named) or a step failed; 2 bad usage; 77 this machine
# cannot run it (not root; no qemu-system-aarch64, mtools, debugfs, sfdisk or xz): the reason is printed.
# Time on this 2-core machine: ~15-25 min (three emulated boots; emulated inference is slow).
set -euo pipefail

IMG='' WORK='' TIMEOUT=1500 SMP=2 MEM=2048 KEEP=0 ONLY=all
HERE="$(cd "$(dirname "$0")" && pwd)"
SRC="$(cd "$HERE/../.." && pwd)"
SHARED="${EMOEDGE_SHARED:-$SRC/../shared}"
usage() { echo "check.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --shared) [ $# -ge 2 ] || usage "--shared needs a folder"; SHARED="$2"; shift 2;;
    --work) [ $# -ge 2 ] || usage "--work needs a folder"; WORK="$2"; shift 2;;
    --timeout) [ $# -ge 2 ] || usage "--timeout needs seconds"; TIMEOUT="$2"; shift 2;;
    --smp) [ $# -ge 2 ] || usage "--smp needs a number"; SMP="$2"; shift 2;;
    --mem) [ $# -ge 2 ] || usage "--mem needs MB"; MEM="$2"; shift 2;;
    --only) [ $# -ge 2 ] || usage "--only needs good or bad"; ONLY="$2"; shift 2;;
    --keep) KEEP=1; shift;;
    -h|--help) sed -n '2,26p' "$0"; exit 0;;
    -*) usage "unknown option $1 (see --help)";;
    *) [ -z "$IMG" ] || usage "one image only (got '$IMG' and '$1')"; IMG="$1"; shift;;
  esac
done
[ -n "$IMG" ] || usage "the image to check is required: check.sh DIR/emoedge-*.img.xz (see --help)"
case "$IMG" in *.img|*.img.xz) ;; *) usage "$IMG: not an .img or .img.xz file";; esac
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] && [ "$TIMEOUT" -ge 60 ] || usage "--timeout must be seconds >= 60, got '$TIMEOUT'"
[[ "$SMP" =~ ^[1-8]$ ]] || usage "--smp must be 1-8, got '$SMP'"
[[ "$MEM" =~ ^[0-9]+$ ]] && [ "$MEM" -ge 512 ] || usage "--mem must be MB >= 512, got '$MEM'"
case "$ONLY" in all|good|bad) ;; *) usage "--only must be good or bad, got '$ONLY'";; esac

skip() { echo "check.sh: SKIPPED: $*" >&2; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (the image's files are root's; debugfs -w on the copy); run it with sudo"
for t in qemu-system-aarch64:qemu-system-arm mcopy:mtools debugfs:e2fsprogs sfdisk:fdisk xz:xz-utils python3:python3; do
  command -v "${t%%:*}" >/dev/null || skip "no ${t%%:*} on this machine (apt-get install ${t##*:})"
done
[ -f "$IMG" ] || usage "$IMG: not found"
CLIP="$SHARED/media/short_hamilton_clip.mp4"
[ -f "$CLIP" ] || usage "$CLIP: not found (the shared video clip; --shared DIR or EMOEDGE_SHARED)"

say() { echo "== $(date -u +%H:%M:%S) $*"; }
die() { echo "check.sh: $*" >&2; exit 1; }
T0=$(date +%s)
if [ -z "$WORK" ]; then WORK="$(mktemp -d /var/tmp/emoedge-imgcheck.XXXXXX)"; else mkdir -p "$WORK"; fi
WORK="$(cd "$WORK" && pwd)"
QPID=''
finish() { [ -z "$QPID" ] || kill "$QPID" 2>/dev/null || true; [ "$KEEP" = 1 ] || rm -rf "$WORK"; }
trap finish EXIT
say "checking $IMG in $WORK"

# 1. the image, its partitions, its kernel and initrd
PRISTINE="$WORK/pristine.img"
case "$IMG" in
  *.xz) nice -n 19 xz -dc -T2 "$IMG" | dd of="$PRISTINE" bs=1M conv=sparse iflag=fullblock status=none;;
  *) cp --sparse=always "$IMG" "$PRISTINE";;
esac
read -r START1 START2 <<< "$(sfdisk -d "$PRISTINE" | sed -nE 's/.*start= *([0-9]+),.*/\1/p' | head -2 | tr '\n' ' ')"
[ -n "${START2:-}" ] || die "$IMG: no two partitions in its table: $(sfdisk -d "$PRISTINE" 2>&1 | tail -3)"
BOOT_OFF=$((START1 * 512)) ROOT_OFF=$((START2 * 512))
export MTOOLS_SKIP_CHECK=1
mcopy -n -i "$PRISTINE@@$BOOT_OFF" ::/config.txt ::/cmdline.txt "$WORK/" \
  || die "the boot partition has no config.txt/cmdline.txt (raspi-firmware's hooks did not run?)"
# the kernel and initrd the Pi's firmware would load (config.txt's kernel= and initramfs, written by raspi-firmware)
KERNEL="$(sed -nE 's/^kernel=([^ ]+).*/\1/p' "$WORK/config.txt" | tail -1)"
INITRD="$(sed -nE 's/^initramfs[ =]+([^ ]+).*/\1/p' "$WORK/config.txt" | tail -1)"
[ -n "$KERNEL" ] && [ -n "$INITRD" ] || die "config.txt names no kernel= or initramfs: $(cat "$WORK/config.txt")"
mcopy -n -i "$PRISTINE@@$BOOT_OFF" "::/$KERNEL" "$WORK/vmlinuz" && mcopy -n -i "$PRISTINE@@$BOOT_OFF" "::/$INITRD" "$WORK/initrd.img" \
  || die "the boot partition has no $KERNEL / $INITRD (named in its config.txt)"
say "kernel $KERNEL, initrd $INITRD"
say "boot partition: $(mdir -b -i "$PRISTINE@@$BOOT_OFF" ::/ | wc -l) entries; cmdline.txt: $(cat "$WORK/cmdline.txt")"
python3 "$HERE/check_image.py" initrd "$WORK/initrd.img" || die "the initrd has no virtio_blk: the root cannot be found under qemu"

# 2. a COPY of the image with a first-boot file (and, for the good run, the clip), and the hook
HOOK_CMDS="$WORK/hook.debugfs"
cp "$HERE/check-hook.sh" "$WORK/emoedge-check-hook" && chmod 755 "$WORK/emoedge-check-hook"
cp "$HERE/check-hook.service" "$WORK/emoedge-check-hook.service" && chmod 644 "$WORK/emoedge-check-hook.service"
cat > "$HOOK_CMDS" <<EOF
cd /usr/local/sbin
write $WORK/emoedge-check-hook emoedge-check-hook
cd /etc/systemd/system
write $WORK/emoedge-check-hook.service emoedge-check-hook.service
cd /etc/systemd/system/multi-user.target.wants
symlink emoedge-check-hook.service /etc/systemd/system/emoedge-check-hook.service
EOF
prepare() {  # prepare COPY YAML [EXTRA_FILE...]
  local copy="$1" yaml="$2"; shift 2
  cp --sparse=always "$PRISTINE" "$copy"
  mcopy -o -i "$copy@@$BOOT_OFF" "$yaml" ::/emoedge.yaml
  for f in "$@"; do mcopy -o -i "$copy@@$BOOT_OFF" "$f" "::/$(basename "$f")"; done
  debugfs -w -f "$HOOK_CMDS" "$copy?offset=$ROOT_OFF" > "$WORK/debugfs.log" 2>&1 || { cat "$WORK/debugfs.log"; die "debugfs -w failed"; }
  debugfs -R 'stat /usr/local/sbin/emoedge-check-hook' "$copy?offset=$ROOT_OFF" 2>/dev/null | grep -q 'Mode:  0755' \
    || die "the hook was not written into the copy's root (debugfs: $(cat "$WORK/debugfs.log"))"
}
# emulation is 10-50x slower than a Pi: udev's coldplug can take longer than systemd's 90 s device timeout
# (the boot partition's label then "never appears" and the boot stops in emergency mode), so it is longer here
EMU_ARGS="systemd.default_device_timeout_sec=600 systemd.default_timeout_start_sec=600"
boot() {  # boot COPY CONSOLE_LOG: until the hook powers off (or --timeout)
  local copy="$1" log="$2" rc=0 t
  t=$(date +%s)
  nice -n 19 timeout "$TIMEOUT" qemu-system-aarch64 -M virt -cpu cortex-a72 -smp "$SMP" -m "$MEM" \
    -kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.img" \
    -append "root=LABEL=RASPIROOT rw rootwait fsck.repair=yes net.ifnames=0 console=ttyAMA0 systemd.show_status=1 $EMU_ARGS" \
    -drive "file=$copy,format=raw,if=virtio" -nic user,model=virtio-net-pci \
    -display none -monitor none -serial "file:$log" -no-reboot > "$log.qemu" 2>&1 || rc=$?
  say "  qemu ended (exit $rc) after $(( $(date +%s) - t )) s; console: $log ($(wc -l < "$log") lines)"
  [ "$rc" = 124 ] && echo "  TIMEOUT after $TIMEOUT s: the last console lines:" && tail -15 "$log"
  return 0
}
readback() {  # readback COPY PREFIX: the report from FAT, the database and settings from ext4
  local copy="$1" p="$2"
  mcopy -n -i "$copy@@$BOOT_OFF" ::/emoedge-firstboot.txt "$p.firstboot.txt" 2>/dev/null || : > "$p.firstboot.txt"
  for f in /data/emoedge/summaries.sqlite /etc/hostname /etc/timezone /var/lib/emoedge/firstboot.sha256 \
           /etc/systemd/system/emoedge-sensor.service; do
    debugfs -R "cat $f" "$copy?offset=$ROOT_OFF" > "$p.$(basename "$f")" 2>/dev/null || true
  done
  debugfs -R "ls -l /etc/systemd/system/multi-user.target.wants" "$copy?offset=$ROOT_OFF" > "$p.wants" 2>/dev/null || true
}

RC=0
if [ "$ONLY" != bad ]; then
  GOOD="$WORK/good.img" Y="$WORK/good.yaml"
  cat > "$Y" <<'EOF'
# deploy/image/check.sh: a classroom sensor that reads the shared clip from the boot partition
profile: classroom-sensor-rpi4
device_id: check-sensor-01
room: lab-1
purpose: "image boot test: counts of expressions in a lab, no person identified"
jurisdiction: UK
timezone: Europe/London
retention_days: 30
source: classroom.mp4
extra:
  - runtime.interval_s=2
  - runtime.max_frames=120
EOF
  cp "$CLIP" "$WORK/classroom.mp4"
  prepare "$GOOD" "$Y" "$WORK/classroom.mp4"
  say "good file: boot 1 (first boot applies emoedge.yaml; the sensor runs on the clip)"
  TB1=$(date +%s); boot "$GOOD" "$WORK/good1.console"; TE1=$(date +%s)
  readback "$GOOD" "$WORK/good1"
  say "good file: boot 2 (the same card again: must be clean)"
  TB2=$(date +%s); boot "$GOOD" "$WORK/good2.console"; TE2=$(date +%s)
  readback "$GOOD" "$WORK/good2"
  python3 "$HERE/check_image.py" good --work "$WORK" --device-id check-sensor-01 --timezone Europe/London \
    --window "$TB1" "$TE1" "$TB2" "$TE2" || RC=1
fi
if [ "$ONLY" != good ]; then
  BAD="$WORK/bad.img" Y="$WORK/bad.yaml"
  cat > "$Y" <<'EOF'
# deploy/image/check.sh: three mistakes: an unknown key, a URL that is not MQTT, no purpose on the classroom profile
profile: classroom-sensor-rpi4
device_id: check-sensor-02
jurisdiction: UK
colour: blue
mqtt:
  url: http://broker.example.org
EOF
  prepare "$BAD" "$Y"
  say "bad file: boot (first boot must refuse it, report it, and leave the sensor off)"
  boot "$BAD" "$WORK/bad.console"
  readback "$BAD" "$WORK/bad"
  python3 "$HERE/check_image.py" bad --work "$WORK" || RC=1
fi
say "done in $(( $(date +%s) - T0 )) s: $([ $RC = 0 ] && echo PASSED || echo FAILED)$([ "$KEEP" = 1 ] && echo "; kept $WORK")"
exit $RC
