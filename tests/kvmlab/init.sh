#!/bin/sh
# The KVM lab's /init (busybox): mount this machine's root file system
# (virtio-9p, tag "hostroot") on /host, give it the guest kernel's modules,
# its own /proc, /sys, /dev, /run and /tmp, load KVM, and run the job named
# on the kernel command line (kvmlab.job=PATH, a bash script on the host;
# kvmlab.modules=DIR, the image's module tree)
# chrooted there, its output on the second serial port. Prints
# "KVMLAB: EXIT <status>" on it, then powers off.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
out=/dev/ttyS1
say() { echo "kvmlab: $*" >"$out"; }
fail() { say "$*"; echo "KVMLAB: EXIT 125" >"$out"; poweroff -f; }

job="" mods=""
for a in $(cat /proc/cmdline); do
	case $a in
	kvmlab.job=*) job=${a#kvmlab.job=} ;;
	kvmlab.modules=*) mods=${a#kvmlab.modules=} ;;
	esac
done
[ -n "$job" ] && [ -n "$mods" ] || fail "no kvmlab.job= or kvmlab.modules= on the kernel command line"

for m in /mods/*.ko; do insmod "$m" || fail "insmod $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,cache=loose hostroot /host ||
	fail "cannot mount the host's root file system (virtio-9p tag hostroot)"
h=/host
mount -t proc proc $h/proc
mount -t sysfs sys $h/sys
mount -t devtmpfs dev $h/dev
mkdir -p $h/dev/pts $h/dev/shm
mount -t devpts devpts $h/dev/pts
mount -t tmpfs tmpfs $h/dev/shm
mount -t tmpfs -o mode=755 tmpfs $h/run
mount -t tmpfs -o mode=1777 tmpfs $h/tmp
mkdir -p $h/run/netns $h/run/lock $h/run/kvmlab/bin
# The guest kernel's modules stay in the lab's image on the host: modprobe,
# for the job and for the kernel's own requests, is pointed there.
[ -d "$h$mods/lib/modules/$(uname -r)" ] || fail "no modules for $(uname -r) under $mods"
printf '#!/bin/sh\nexec /sbin/modprobe -d %s "$@"\n' "$mods" >$h/run/kvmlab/bin/modprobe
chmod 755 $h/run/kvmlab/bin/modprobe
# The kernel's own requests run in this initramfs's root, not the job's.
printf '#!/bin/sh\nexec chroot /host /sbin/modprobe -d %s "$@"\n' "$mods" >/bin/kvmlab-modprobe
chmod 755 /bin/kvmlab-modprobe
echo /bin/kvmlab-modprobe >/proc/sys/kernel/modprobe
for t in kvm_amd virtio_rng tun; do
	chroot $h /run/kvmlab/bin/modprobe "$t" || fail "modprobe $t failed"
done
[ -c $h/dev/kvm ] || fail "no /dev/kvm after loading kvm_amd"
say "up after $(cut -d' ' -f1 /proc/uptime) s, kernel $(uname -r), /dev/kvm present"
chroot $h /usr/bin/env -i PATH=/run/kvmlab/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root TERM=dumb LC_ALL=C /bin/bash -c 'ip link set lo up; exec /bin/bash "$0"' "$job" \
	</dev/null >"$out" 2>&1
rc=$?
echo "KVMLAB: EXIT $rc" >"$out"
sync
poweroff -f
