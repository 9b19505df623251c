# shellcheck shell=bash
# Sourced by deploy/check-arm64.sh and deploy/image/build.sh: arm64 binaries run under qemu-user through
# binfmt_misc (qemu-user-static registers qemu-aarch64 with the F flag, so a chroot needs no interpreter inside).
# binfmt_aarch64_ready: mounts binfmt_misc and registers qemu-aarch64 where needed; otherwise calls the caller's
# `skip REASON` (exit 77: this machine cannot run it).
binfmt_aarch64_ready() {
  if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null \
      || skip "binfmt_misc cannot be mounted here (a container without the privilege?): arm64 binaries cannot run"
  fi
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 \
    || skip "qemu-aarch64 cannot be registered with binfmt_misc"
  grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
    || skip "qemu-aarch64 is registered without the F flag: a chroot cannot find the interpreter"
}
