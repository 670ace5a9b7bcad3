#!/bin/bash
# Builds the KVM lab: Debian's kernel, which runs under QEMU (TCG) with
# emulated SVM and nested paging and so has a working /dev/kvm, and a small
# initramfs that mounts this machine's root file system over virtio-9p and
# runs a command in it (docs/lab.md, "The KVM lab").
#
#   tests/kvmlab/build.sh
#
# Output: build/kvmlab/img/<key>/{vmlinuz,initrd.gz}, the kernel's module
# tree under build/kvmlab/img/<key>/modules/lib/modules (the lab's modprobe
# is pointed there: the initramfs carries only what mounting the host needs),
# and build/kvmlab/current pointing at it. The kernel package is the one the
# Xen lab uses, from the same cache (build/lab/debs). <key> hashes the
# kernel package's version, busybox and the scripts here: an unchanged lab
# is not rebuilt.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
lab=$top/build/kvmlab
debs=$top/build/lab/debs

say() { echo "kvmlab-build: $*"; }
die() { echo "kvmlab-build: error: $*" >&2; exit 1; }

for t in apt-get apt-cache dpkg-deb cpio gzip depmod modprobe sha256sum; do
	command -v "$t" >/dev/null || die "$t is missing: run scripts/install-deps.sh as root"
done
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 ||
	die "/bin/busybox is missing or not static: install busybox-static (scripts/install-deps.sh)"

. "$top/tests/lab/kernel-pkg.sh"
lab_kernel_pkg
kv=$(apt-cache policy "$kpkg" | awk '/Candidate:/ {print $2}')
[ -n "$kv" ] && [ "$kv" != "(none)" ] || die "package $kpkg has no candidate version (apt-get update?)"

key=$({
	echo "$kpkg=$kv"
	sha256sum /bin/busybox
	(cd "$here" && find . -type f ! -name '*~' | sort | xargs sha256sum)
	sha256sum "$top/tests/lab/kernel-pkg.sh"
} | sha256sum | cut -c1-16)
img=$lab/img/$key
if [ -f "$img/done" ]; then
	ln -sfn "img/$key" "$lab/current"
	exit 0
fi
say "building KVM lab image $key ($kpkg $kv)"
t0=$(date +%s)

mkdir -p "$debs"
deb=$(ls "$debs/${kpkg}_${kv//:/%3a}_"*.deb 2>/dev/null | head -n 1 || true)
if [ -z "$deb" ]; then
	say "downloading $kpkg=$kv"
	(cd "$debs" && apt-get download -q "$kpkg=$kv" 2>&1 | grep -v -e '^Get:' -e unsandboxed -e '^Fetched' || true)
	deb=$(ls "$debs/${kpkg}_${kv//:/%3a}_"*.deb 2>/dev/null | head -n 1 || true)
	[ -n "$deb" ] || die "download of $kpkg=$kv failed"
fi

tmp=$lab/img/$key.tmp
rm -rf "$tmp"
mkdir -p "$tmp/sys" "$tmp/root"
dpkg-deb -x "$deb" "$tmp/sys"
[ -f "$tmp/sys/boot/vmlinuz-$kver" ] || die "$kpkg has no boot/vmlinuz-$kver"
cp "$tmp/sys/boot/vmlinuz-$kver" "$tmp/vmlinuz"
mkdir -p "$tmp/modules/lib"
mv "$tmp/sys/lib/modules" "$tmp/modules/lib/"
depmod -b "$tmp/modules" "$kver"

# The initramfs: busybox, the modules that mount the host's root over
# virtio-9p, and /init.
r=$tmp/root
mkdir -p "$r"/{bin,proc,sys,dev,host,mods}
cp /bin/busybox "$r/bin/busybox"
for a in sh mount umount mkdir insmod cat echo sleep poweroff chroot grep sed cut; do
	ln -s busybox "$r/bin/$a"
done
for m in virtio_pci 9pnet_virtio 9p; do
	modprobe -d "$tmp/modules" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' >"$tmp/mods"
[ -s "$tmp/mods" ] || die "cannot resolve the virtio-9p modules in $kpkg"
i=0
while read -r m; do
	i=$((i + 1))
	cp "$m" "$r/mods/$(printf '%02d' $i)-$(basename "$m")"
done <"$tmp/mods"
cp "$here/init.sh" "$r/init"
chmod 755 "$r/init"
echo "$kver" >"$r/kernel-version"
(cd "$r" && find . | cpio -o -H newc --quiet | gzip -6) >"$tmp/initrd.gz"
rm -rf "$tmp/sys" "$r" "$tmp/mods"
touch "$tmp/done"
rm -rf "$img"
mv "$tmp" "$img"
ln -sfn "img/$key" "$lab/current"
ls -1dt "$lab"/img/*/ 2>/dev/null | tail -n +3 | xargs -r rm -rf
say "built $key in $(($(date +%s) - t0)) s"
