#!/usr/bin/env bash
# deploy/image/build.sh's system settings for the image root ROOT (host-side file writes and
# `systemctl --root` only: nothing runs inside the arm64 root here).   rootfs.sh ROOT HERE
set -euo pipefail
ROOT="$1" HERE="$2"
[ -d "$ROOT/etc" ] || { echo "rootfs.sh: $ROOT: not a root file system" >&2; exit 2; }

echo emoedge > "$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\temoedge\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$ROOT/etc/hosts"
cat > "$ROOT/etc/fstab" <<'FSTAB'
# the emoedge image (deploy/image/build.sh): partitions by label, as Debian's raspi images
LABEL=RASPIROOT  /               ext4  rw,noatime,errors=remount-ro  0 1
LABEL=RASPIFIRM  /boot/firmware  vfat  rw,noatime,umask=0022         0 2
FSTAB
mkdir -p "$ROOT/boot/firmware" "$ROOT/etc/systemd/network" "$ROOT/var/log/journal"
# wired network by DHCP through systemd-networkd (Wi-Fi: wpa_supplicant@wlan0 + its .network, from the first-boot file)
cat > "$ROOT/etc/systemd/network/10-wired.network" <<'NET'
[Match]
Name=eth* en*

[Network]
DHCP=yes
MulticastDNS=yes

[DHCPv4]
UseDomains=yes
NET
# DEVICE_ID.local answers on the network (mDNS by systemd-resolved; the wired and Wi-Fi .network files say yes)
mkdir -p "$ROOT/etc/systemd/resolved.conf.d"
printf '[Resolve]\nMulticastDNS=yes\n' > "$ROOT/etc/systemd/resolved.conf.d/50-emoedge-image.conf"
# SSH: keys only (the first-boot file's ssh_authorized_keys); host keys made on each card's first boot
mkdir -p "$ROOT/etc/ssh/sshd_config.d"
printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n' \
  > "$ROOT/etc/ssh/sshd_config.d/50-emoedge-image.conf"
install -m 0644 "$HERE/units/emoedge-ssh-hostkeys.service" "$ROOT/etc/systemd/system/"
install -m 0644 "$HERE/units/emoedge-growroot.service" "$ROOT/etc/systemd/system/"
install -m 0755 "$HERE/units/emoedge-growroot" "$ROOT/usr/local/sbin/emoedge-growroot"
# the emoedge services find BlazeFace in /opt/emoedge/models (their units are rendered by the first-boot unit;
# a drop-in survives every re-render); a log-in shell finds it and the emoedge command too
for u in emoedge-sensor emoedge-kiosk; do
  mkdir -p "$ROOT/etc/systemd/system/$u.service.d"
  printf '# the emoedge image: detector files shipped in the image\n[Service]\nEnvironment=EMOEDGE_MODELS=/opt/emoedge/models\n' \
    > "$ROOT/etc/systemd/system/$u.service.d/10-image.conf"
done
grep -q '^EMOEDGE_MODELS=' "$ROOT/etc/environment" 2>/dev/null || echo 'EMOEDGE_MODELS=/opt/emoedge/models' >> "$ROOT/etc/environment"
printf 'export EMOEDGE_MODELS=/opt/emoedge/models\ncase ":$PATH:" in *:/opt/emoedge/venv/bin:*) ;; *) PATH="$PATH:/opt/emoedge/venv/bin";; esac\n' \
  > "$ROOT/etc/profile.d/emoedge.sh"
ln -sf /usr/share/zoneinfo/Etc/UTC "$ROOT/etc/localtime" && echo Etc/UTC > "$ROOT/etc/timezone"
systemctl --root="$ROOT" enable systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
  ssh.service emoedge-ssh-hostkeys.service emoedge-growroot.service
