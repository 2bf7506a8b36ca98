#!/usr/bin/env bash
# mmdebstrap customize hook for the emulated Pi's root file system
# (called by ci/system/build-image.sh as: customize.sh ROOTFS_DIR).
# Environment: PIFORK_SYSTEM_PUBKEY (file with root's authorized key),
#              PIFORK_SYSTEM_HOSTNAME (default pifork-pi).
set -euo pipefail
R=$1
HOST=${PIFORK_SYSTEM_HOSTNAME:-pifork-pi}
: "${PIFORK_SYSTEM_PUBKEY:?PIFORK_SYSTEM_PUBKEY must name the public key file}"

echo "$HOST" >"$R/etc/hostname"
cat >"$R/etc/hosts" <<EOF
127.0.0.1	localhost
127.0.1.1	$HOST
::1		localhost ip6-localhost ip6-loopback
EOF
# The initramfs mounts the root file system read-write; no fsck at boot.
echo '/dev/vda / ext4 rw,relatime 0 0' >"$R/etc/fstab"

# DHCP on the virtio NIC through systemd-networkd.
mkdir -p "$R/etc/systemd/network"
cat >"$R/etc/systemd/network/20-wired.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
chroot "$R" systemctl enable systemd-networkd.service >/dev/null 2>&1
# Nothing here waits for the network, and timers have no business in a test
# that measures progress: mask them.
for unit in systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
    e2scrub_all.timer e2scrub_reap.service fstrim.timer; do
    ln -sf /dev/null "$R/etc/systemd/system/$unit"
done

# Root logs in with the key generated for the test, never with a password.
install -d -m 0700 "$R/root/.ssh"
install -m 0600 "$PIFORK_SYSTEM_PUBKEY" "$R/root/.ssh/authorized_keys"
mkdir -p "$R/etc/ssh/sshd_config.d"
cat >"$R/etc/ssh/sshd_config.d/pifork-test.conf" <<'EOF'
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
EOF

# A persistent journal, like on the appliance.
mkdir -p "$R/var/log/journal"
# systemd generates the machine id on first boot.
: >"$R/etc/machine-id"
