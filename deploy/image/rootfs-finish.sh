#!/usr/bin/env bash
# deploy/image/build.sh's last touches to the image root after emoedge is installed (host-side only):
# the first-boot unit and its example, the emoedge service left to the first-boot file, and nothing
# of the build machine or of one card kept (host keys, machine id, caches, logs, sources).
#   rootfs-finish.sh ROOT HERE VERSION COMMIT MIRROR SECURITY
set -euo pipefail
ROOT="$1" HERE="$2" VERSION="$3" COMMIT="$4" MIRROR="$5" SECURITY="$6"
[ -x "$ROOT/opt/emoedge/venv/bin/emoedge" ] || { echo "rootfs-finish.sh: emoedge is not installed in $ROOT" >&2; exit 2; }

# the emoedge service starts only once a first-boot file has been applied: not enabled in the image
systemctl --root="$ROOT" disable emoedge-sensor.service emoedge-kiosk.service 2>/dev/null || true
if [ -f "$HERE/emoedge-firstboot.service" ]; then
  install -m 0644 "$HERE/emoedge-firstboot.service" "$ROOT/etc/systemd/system/emoedge-firstboot.service"
  systemctl --root="$ROOT" enable emoedge-firstboot.service
  echo "# first-boot unit installed and enabled"
else
  echo "# WARNING: $HERE/emoedge-firstboot.service not found: the image has no first-boot unit" >&2
fi
if [ -f "$HERE/emoedge.yaml.example" ]; then
  install -m 0644 "$HERE/emoedge.yaml.example" "$ROOT/boot/firmware/emoedge.yaml.example"
else
  echo "# WARNING: $HERE/emoedge.yaml.example not found: no example on the boot partition" >&2
fi
# the unit templates, for the first-boot unit's re-renders
mkdir -p "$ROOT/opt/emoedge/deploy/systemd"
install -m 0644 "$ROOT"/opt/src/emoedge/deploy/systemd/*.service "$ROOT/opt/emoedge/deploy/systemd/"

# the installer's source copy, the build's CAs (update-ca-certificates ran again by build.sh) and leftovers
rm -rf "$ROOT/opt/src" "$ROOT/tmp/"* "$ROOT/var/tmp/"* "$ROOT/root/.cache" "$ROOT/root/.bash_history"
rm -f "$ROOT/usr/sbin/policy-rc.d"
rm -f "$ROOT"/etc/ssh/ssh_host_*
: > "$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id" "$ROOT/var/lib/systemd/random-seed" "$ROOT/var/cache/ldconfig/aux-cache"
rm -rf "$ROOT/var/lib/apt/lists/"* "$ROOT/var/cache/apt/"*.bin "$ROOT/var/cache/apt/archives/"*.deb
rm -f "$ROOT"/var/cache/debconf/*-old "$ROOT"/var/lib/dpkg/*-old "$ROOT/etc/shadow-" "$ROOT/etc/gshadow-" \
      "$ROOT/etc/passwd-" "$ROOT/etc/group-" "$ROOT/etc/subuid-" "$ROOT/etc/subgid-"
find "$ROOT/var/log" -type f -delete
mkdir -p "$ROOT/etc/apt/sources.list.d"
{ echo "Types: deb"; echo "URIs: http://deb.debian.org/debian"; echo "Suites: trixie trixie-updates"
  echo "Components: main non-free-firmware"; echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
  echo; echo "Types: deb"; echo "URIs: http://deb.debian.org/debian-security"; echo "Suites: trixie-security"
  echo "Components: main non-free-firmware"; echo "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
} > "$ROOT/etc/apt/sources.list.d/debian.sources"
cat > "$ROOT/etc/emoedge-image" <<INFO
# the emoedge SD-card image (deploy/image/build.sh)
emoedge_version=$VERSION
emoedge_commit=$COMMIT
debian_release=trixie
built_from_mirror=$MIRROR
built_from_security=$SECURITY
source_date_epoch=$SOURCE_DATE_EPOCH
INFO
printf '\nemoedge %s image (%s). Check it: emoedge doctor --profile classroom-sensor-rpi4\nSettings: /boot/firmware/emoedge.yaml (report: /boot/firmware/emoedge-firstboot.txt)\n\n' \
  "$VERSION" "$COMMIT" > "$ROOT/etc/motd"
