#!/bin/bash
# Builds the Xen lab from Debian packages: Xen 4.17's multiboot image, the
# Debian kernel, and a dom0 initramfs holding the Xen tools, our binaries,
# the lab tests and a small counting PVH domU.
#
#   tests/lab/build.sh BUILD            (BUILD: e.g. build/default, holds bin/)
#
# Output: build/lab/img/<key>/{xen,vmlinuz,dom0.gz} and build/lab/current
# pointing at it. <key> hashes every input (package versions, host tools,
# the lab's scripts, our binaries): an unchanged lab is not rebuilt.
# Downloaded .debs stay in build/lab/debs between runs.
set -euo pipefail
export LC_ALL=C

B=${1:?usage: tests/lab/build.sh BUILD (e.g. build/default)}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
lab=$top/build/lab
bindir=$(cd "$B/bin" 2>/dev/null && pwd) ||
	{ echo "lab-build: $B/bin does not exist: run make first" >&2; exit 1; }

say() { echo "lab-build: $*"; }
die() { echo "lab-build: error: $*" >&2; exit 1; }

for t in apt-get apt-cache dpkg-deb cpio gzip depmod modprobe ldd sha256sum; do
	command -v "$t" >/dev/null || die "$t is missing: run scripts/install-deps.sh as root"
done
[ -x /bin/busybox ] || die "/bin/busybox is missing: install busybox-static (scripts/install-deps.sh)"
file_is_static() { ! ldd "$1" >/dev/null 2>&1; }
file_is_static /bin/busybox || die "/bin/busybox is not static: install busybox-static"

# --- inputs -----------------------------------------------------------
. "$here/kernel-pkg.sh"
lab_kernel_pkg

PKGS="$kpkg xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common xenstore-utils
libxencall1 libxenevtchn1 libxenforeignmemory1 libxengnttab1 libxenmisc4.17 libxenstore4
libxentoollog1 libxentoolcore1 libxendevicemodel1 libxenhypfs1 libyajl2 drbd-utils
qemu-system-xen qemu-system-data seabios"

# Host tools that go into dom0 as they are (same Debian release); flock is
# for the hotplug scripts' locking (a domU with a disk).
HOST_TOOLS="/bin/bash /usr/bin/ip /sbin/tc /bin/ping /usr/bin/setpriv /usr/bin/timeout /usr/bin/flock"
HOST_TOOLS=$(for t in $HOST_TOOLS; do [ -e "$t" ] && readlink -f "$t"; done)

mkdir -p "$lab/debs"
versions=""
for p in $PKGS; do
	v=$(apt-cache policy "$p" | awk '/Candidate:/ {print $2}')
	[ -n "$v" ] && [ "$v" != "(none)" ] || die "package $p has no candidate version (apt-get update?)"
	versions="$versions$p=$v
"
done

key=$({
	printf '%s' "$versions"
	sha256sum /bin/busybox $HOST_TOOLS
	(cd "$here" && find . -type f ! -name '*~' | sort | xargs sha256sum)
	(cd "$top/tests/integration" && sha256sum ./*.sh)
	(cd "$bindir" && sha256sum ./*)
} | sha256sum | cut -c1-16)
img=$lab/img/$key
if [ -f "$img/done" ]; then
	ln -sfn "img/$key" "$lab/current"
	say "up to date ($key)"
	exit 0
fi
say "building lab image $key"
t0=$(date +%s)

# --- packages ---------------------------------------------------------
debfile() { # PKG VERSION -> the .deb apt-get download makes
	local v=${2//:/%3a}
	ls "$lab/debs/${1}_${v}_"*.deb 2>/dev/null | head -n 1
}
need=""
while IFS='=' read -r p v; do
	[ -n "$p" ] || continue
	[ -n "$(debfile "$p" "$v")" ] || need="$need $p=$v"
done <<<"$versions"
if [ -n "$need" ]; then
	say "downloading:$need"
	# shellcheck disable=SC2086
	(cd "$lab/debs" && apt-get download -q $need 2>&1 | grep -v -e '^Get:' -e unsandboxed -e '^Fetched' || true)
fi
work=$lab/work
rm -rf "$work"
mkdir -p "$work/sys" "$work/dom0" "$work/domu"
while IFS='=' read -r p v; do
	[ -n "$p" ] || continue
	f=$(debfile "$p" "$v")
	[ -n "$f" ] || die "download of $p=$v failed"
	dpkg-deb -x "$f" "$work/sys"
done <<<"$versions"

sys=$work/sys
root=$work/dom0
[ -f "$sys/boot/xen-4.17-amd64.gz" ] || die "xen-hypervisor-4.17-amd64 has no boot/xen-4.17-amd64.gz"
[ -f "$sys/boot/vmlinuz-$kver" ] || die "$kpkg has no boot/vmlinuz-$kver"

# --- dom0 tree --------------------------------------------------------
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,etc,proc,sys,dev,run,tmp,root,var/log/xen/console,var/lib/xen,var/lib/xenstored,lab/bin,lab/tests,lab/integration,lab/domu}
ln -s ../run "$root/var/run"
ln -s ../run/lock "$root/var/lock"

xb=usr/lib/xen-4.17/bin
mkdir -p "$root/$xb"
for t in xl xenstored xenconsoled libxl-save-helper xen-init-dom0 xenstore-control; do
	cp -a "$sys/$xb/$t" "$root/$xb/"
done
for t in xl xenstored xenconsoled xen-init-dom0 xenstore-control; do
	ln -s "/$xb/$t" "$root/usr/sbin/$t"
done
cp -a "$sys"/usr/bin/xenstore "$root/usr/bin/"
for t in chmod exists list ls read rm watch write; do
	ln -s xenstore "$root/usr/bin/xenstore-$t"
done
for t in drbdadm drbdsetup drbdmeta; do
	for d in sbin usr/sbin; do
		[ -e "$sys/$d/$t" ] && cp -a "$sys/$d/$t" "$root/usr/sbin/" && break
	done
done
# drbd-utils keeps the tools per kernel-module version (drbdsetup-84, which
# the drbdsetup wrapper runs for DRBD 8.4) under /lib/drbd, scripts under
# /usr/lib/drbd.
mkdir -p "$root/usr/lib"
for d in lib/drbd usr/lib/drbd; do
	[ -d "$sys/$d" ] && cp -a "$sys/$d" "$root/$(dirname "$d")/"
done
cp -a "$sys/etc/xen" "$root/etc/"
# An HVM guest's device model (QEMU, where libxl looks for it), firmware
# loader and BIOS: the lab checks that ha-protect refuses such a guest.
mkdir -p "$root/usr/libexec" "$root/usr/lib/xen-4.17/boot" "$root/usr/share/seabios"
cp -a "$sys/usr/libexec/xen-qemu-system-i386" "$root/usr/libexec/"
cp -a "$sys/usr/lib/xen-4.17/boot/hvmloader" "$root/usr/lib/xen-4.17/boot/"
cp -a "$sys/usr/share/seabios/bios-256k.bin" "$root/usr/share/seabios/"
# QEMU reads its keymap even with no display (libxl passes -vnc none -k).
mkdir -p "$root/usr/share/qemu/keymaps"
cp -a "$sys/usr/share/qemu/keymaps/en-us" "$root/usr/share/qemu/keymaps/"

for t in $HOST_TOOLS; do
	case $(basename "$t") in
	bash) cp "$t" "$root/bin/bash" ;;
	*) cp "$t" "$root/usr/sbin/" ;;
	esac
done
cp /bin/busybox "$root/bin/busybox"
# /bin/sh is bash: busybox's shell runs its own applets ahead of PATH
# (its ip has no netns, its tc no plug qdisc), which the tests' sh -c
# commands must not get.
ln -s bash "$root/bin/sh"
# Busybox applets go to /bin, except names a real tool already has.
for a in $(/bin/busybox --list); do
	[ "$a" = busybox ] && continue
	if [ -e "$root/usr/sbin/$a" ] || [ -e "$root/usr/bin/$a" ] || [ -e "$root/bin/$a" ]; then
		continue
	fi
	ln -s busybox "$root/bin/$a"
done

# Our binaries and the lab's scripts.
cp -a "$bindir"/. "$root/lab/bin/"
cp "$here"/tests/*.sh "$root/lab/tests/"
cp "$here/lib.sh" "$root/lab/lib.sh"
cp "$top"/tests/integration/*.sh "$root/lab/integration/"
cp "$here/init.sh" "$root/init"
chmod 755 "$root/init"

# Shared libraries: what ldd resolves for every ELF in dom0, looking in the
# extracted packages first, then on the host (same Debian release).
libpath=$sys/usr/lib/x86_64-linux-gnu:$sys/lib/x86_64-linux-gnu:$sys/usr/lib/xen-4.17/lib
copy_lib() { # resolved path on the build host
	local src=$1 dst
	case "$src" in
	"$sys"/*) dst=${src#"$sys"} ;;
	*) dst=$src ;;
	esac
	dst=/usr/lib/x86_64-linux-gnu/$(basename "$dst")
	[ -e "$root$dst" ] && return 0
	cp -L "$src" "$root$dst"
}
mkdir -p "$root/usr/lib/x86_64-linux-gnu" "$root/lib64"
: >"$work/libs"
while IFS= read -r -d '' f; do
	head -c 4 "$f" 2>/dev/null | grep -q 'ELF' || continue
	out=$(LD_LIBRARY_PATH=$libpath ldd "$f" 2>/dev/null) || continue
	if grep -q 'not found' <<<"$out"; then
		die "$(basename "$f") needs a library found neither in the packages nor on this host: $(grep 'not found' <<<"$out" | head -n 3 | tr '\n' ' ')"
	fi
	awk '/=> \// {print $3}' <<<"$out" >>"$work/libs"
done < <(find "$root" -type f -perm -u+x ! -name busybox -print0)
sort -u "$work/libs" | while read -r l; do copy_lib "$l"; done
cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
# xl and libxl need libgcc_s at run time (pthread_cancel unwinding).
copy_lib "$(readlink -f /lib/x86_64-linux-gnu/libgcc_s.so.1)"
[ -e "$root/usr/lib/x86_64-linux-gnu/libgcc_s.so.1" ] ||
	cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$root/usr/lib/x86_64-linux-gnu/"
ln -s usr/lib/x86_64-linux-gnu "$root/lib/x86_64-linux-gnu"
mkdir -p "$root/etc"
echo /usr/lib/x86_64-linux-gnu >"$root/etc/ld.so.conf"

# Kernel modules: the ones the lab loads, with their dependencies.
MODULES="xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xen-netback xen-blkback
sch_plug sch_ingress act_mirred cls_u32 cls_matchall ifb veth bridge dummy loop
drbd crc32c_generic"
kmods=$sys/lib/modules/$kver
depmod -b "$sys" "$kver"
for m in $MODULES; do
	modprobe -d "$sys" -S "$kver" --show-depends "$m" 2>/dev/null |
		awk '$1 == "insmod" {print $2}'
done | sort -u >"$work/mods"
[ -s "$work/mods" ] || die "no kernel modules resolved from $kpkg"
for m in $MODULES; do
	modprobe -d "$sys" -S "$kver" --show-depends "$m" >/dev/null 2>&1 ||
		grep -q "/${m//-/[-_]}.ko" "$sys/lib/modules/$kver/modules.builtin" ||
		die "module $m is neither in $kpkg nor built in"
done
while read -r m; do
	rel=${m#"$sys"}
	mkdir -p "$root$(dirname "$rel")"
	cp "$m" "$root$rel"
done <"$work/mods"
cp "$kmods"/modules.order "$kmods"/modules.builtin* "$root/lib/modules/$kver/" 2>/dev/null || true
depmod -b "$root" "$kver"

# --- domU: the same kernel and a counting busybox initramfs ------------
d=$work/domu
mkdir -p "$d"/{bin,proc,sys,dev,lib}
cp /bin/busybox "$d/bin/busybox"
for a in sh echo sleep usleep mount cat dd insmod grep tr; do ln -s busybox "$d/bin/$a"; done
# The block frontend, for domUs given a disk (lab.disk on the command line).
blkfront=$(find "$kmods" -name 'xen-blkfront.ko*' | head -n 1)
[ -n "$blkfront" ] || die "$kpkg has no xen-blkfront module"
case $blkfront in
*.ko) cp "$blkfront" "$d/lib/xen-blkfront.ko" ;;
*.ko.xz) xz -dc "$blkfront" >"$d/lib/xen-blkfront.ko" ;;
*) die "cannot unpack $blkfront" ;;
esac
cat >"$d/init" <<'EOF'
#!/bin/sh
# The lab's domU: print a counter every ~100 ms on the console (hvc0).
# With lab.disk on the command line, each step also writes record i
# ("rec i", 512 bytes at sector i) to /dev/xvda with direct I/O, after
# checking that record i-1 is on the disk (memory says it was written:
# "DISK BEHIND" if not) and noting when record i is already there ("disk
# ahead": a write the disk kept from beyond the checkpoint this copy was
# resumed from).
mount -t proc proc /proc
mount -t devtmpfs dev /dev 2>/dev/null
rec() { dd if=/dev/xvda bs=512 skip="$1" count=1 iflag=direct 2>/dev/null | tr -d '\000\n'; }
if grep -q 'lab\.disk' /proc/cmdline; then
	insmod /lib/xen-blkfront.ko
	n=0
	while [ ! -b /dev/xvda ] && [ $n -lt 100 ]; do usleep 100000; n=$((n + 1)); done
	[ -b /dev/xvda ] || echo "domu: no /dev/xvda"
	echo "domu: counting with disk records"
	i=0
	while :; do
		if [ $i -gt 0 ]; then
			r=$(rec $((i - 1)))
			[ "$r" = "rec $((i - 1))" ] || echo "domu: DISK BEHIND: record $((i - 1)) reads '$r'"
		fi
		[ "$(rec $i)" = "rec $i" ] && echo "domu: disk ahead at $i"
		printf 'rec %d\n' $i | dd of=/dev/xvda bs=512 seek=$i count=1 conv=sync,notrunc oflag=direct 2>/dev/null ||
			echo "domu: writing record $i failed"
		echo "count $i"
		i=$((i + 1))
		usleep 100000
	done
fi
echo "domu: counting"
i=0
while :; do
	echo "count $i"
	i=$((i + 1))
	usleep 100000
done
EOF
chmod 755 "$d/init"

# --- lab.net: the domU's network, and what dom0 needs to buffer it ----
# (docs/lab.md, "The domU's network"). With lab.net[=ADDR/LEN] on its
# command line the domU loads xen-netfront, gives eth0 ADDR/LEN (default
# 10.99.0.2/24) and runs domu-counter (UDP 7000, a counter in its memory);
# then the console counter above runs unchanged (/init.count). Dom0 gets
# iptables (legacy, with its extensions) and the netfilter modules of the
# NFQUEUE output buffer (br_netfilter for bridged vifs).
[ -x "$bindir/domu-counter" ] || die "$B/bin/domu-counter is missing: run make"
netfront=$(find "$kmods" -name 'xen-netfront.ko*' | head -n 1)
case $netfront in
*.ko) cp "$netfront" "$d/lib/xen-netfront.ko" ;;
*.ko.xz) xz -dc "$netfront" >"$d/lib/xen-netfront.ko" ;;
*) die "$kpkg has no usable xen-netfront module ($netfront)" ;;
esac
cp "$bindir/domu-counter" "$d/bin/domu-counter"
for a in ip umount; do ln -sf busybox "$d/bin/$a"; done
mv "$d/init" "$d/init.count"
cat >"$d/init" <<'EOF'
#!/bin/sh
# lab.net[=ADDR/LEN]: eth0 (xen-netfront) up with a static address and the
# counter service on UDP 7000; then the console counter (/init.count).
mount -t proc proc /proc
mount -t devtmpfs dev /dev 2>/dev/null
# lab.crash: a line "crash" typed on the console (dom0 writes it to the
# domain's console pty) panics the guest's kernel (sysrq 'c' through
# /proc/sysrq-trigger, which no sysrq mask refuses): the guest ends itself,
# and its kernel tells Xen so (shutdown reason crash).
if grep -q 'lab\.crash' /proc/cmdline; then
	(
		while read -r l; do
			case $l in crash*) echo c >/proc/sysrq-trigger ;; esac
		done </dev/hvc0
	) &
fi
net=""
for a in $(cat /proc/cmdline); do
	case $a in lab.net | lab.net=*) net=$a ;; esac
done
if [ -n "$net" ]; then
	addr=${net#lab.net}
	addr=${addr#=}
	[ -n "$addr" ] || addr=10.99.0.2/24
	insmod /lib/xen-netfront.ko
	n=0
	while ! ip link show eth0 >/dev/null 2>&1 && [ $n -lt 100 ]; do usleep 100000; n=$((n + 1)); done
	ip link set lo up
	ip addr add "$addr" dev eth0 && ip link set eth0 up && echo "domu: eth0 up, $addr" ||
		echo "domu: NO NETWORK (eth0 missing or not configurable)"
	/bin/domu-counter &
fi
umount /proc
exec /init.count
EOF
chmod 755 "$d/init" "$d/init.count"
iptx=/usr/sbin/xtables-legacy-multi
[ -x "$iptx" ] || die "$iptx is missing: install iptables"
cp "$iptx" "$root/usr/sbin/xtables-legacy-multi"
for t in iptables ip6tables iptables-save ip6tables-save; do
	ln -sf xtables-legacy-multi "$root/usr/sbin/$t"
done
mkdir -p "$root/usr/lib/x86_64-linux-gnu/xtables"
cp -L /usr/lib/x86_64-linux-gnu/xtables/*.so "$root/usr/lib/x86_64-linux-gnu/xtables/"
for f in "$iptx" /usr/lib/x86_64-linux-gnu/xtables/*.so; do
	ldd "$f" 2>/dev/null | awk '/=> \// {print $3}'
done | sort -u | while read -r l; do copy_lib "$l"; done
for m in br_netfilter nfnetlink_queue xt_NFQUEUE xt_physdev iptable_filter ip6table_filter; do
	modprobe -d "$sys" -S "$kver" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" {print $2}'
done | sort -u | while read -r m; do
	rel=${m#"$sys"}
	mkdir -p "$root$(dirname "$rel")"
	cp "$m" "$root$rel"
done
depmod -b "$root" "$kver"
(cd "$d" && find . | cpio -o -H newc --quiet | gzip -9) >"$root/lab/domu/initrd.gz"
cp "$sys/boot/vmlinuz-$kver" "$root/lab/domu/vmlinuz"
cat >"$root/lab/domu/domu.cfg" <<'EOF'
# A PVH domU for the lab: the Debian kernel and a counting busybox initramfs.
name = "domu"
type = "pvh"
kernel = "/lab/domu/vmlinuz"
ramdisk = "/lab/domu/initrd.gz"
extra = "console=hvc0 loglevel=3 pci=noearly rdinit=/init"
memory = 96
vcpus = 1
# Under QEMU's emulated SVM the domUs died right after instructions that
# Xen traps and emulates (RDTSC, IN from the PCI config port; docs/lab.md,
# "Crashes"): the TSC is the host's, not emulated (tsc_mode native), and
# the kernel skips its early PCI scan (pci=noearly; a PVH guest has no PCI).
tsc_mode = "native"
# A triple fault is Xen's HVM shutdown action "reboot": preserved like a
# crash (not recreated under a new id), so the lab sees every death.
on_reboot = "preserve"
on_crash = "preserve"
EOF
echo "$kver" >"$root/lab/kernel-version"
printf '%s' "$versions" >"$root/lab/packages"

# --- images -----------------------------------------------------------
tmpimg=$lab/img/$key.tmp
rm -rf "$tmpimg"
mkdir -p "$tmpimg"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -6) >"$tmpimg/dom0.gz"
zcat "$sys/boot/xen-4.17-amd64.gz" >"$tmpimg/xen"
cp "$sys/boot/vmlinuz-$kver" "$tmpimg/vmlinuz"
printf '%s' "$versions" >"$tmpimg/packages"
touch "$tmpimg/done"
rm -rf "$img"
mv "$tmpimg" "$img"
ln -sfn "img/$key" "$lab/current"
# Keep the newest three images.
ls -1dt "$lab"/img/*/ 2>/dev/null | tail -n +4 | xargs -r rm -rf
rm -rf "$work"
say "built $key in $(($(date +%s) - t0)) s: dom0 initramfs $(du -h "$img/dom0.gz" | cut -f1)"
