#!/bin/bash
# Builds the QEMU that both labs boot (tests/lab/, tests/kvmlab/): Debian's
# own qemu source package, as apt has it, with one fix to TCG's emulated
# SVM, then prints the path of its qemu-system-x86_64.
#
#   tests/qemu/build.sh          build (cached) and print the binary's path
#
# The fix (docs/lab.md, "Crashes"): VMRUN with an event to inject of type
# INTR (how Xen and KVM deliver an interrupt to their guests) delivers it at
# once, in helper_vmrun, but leaves the vCPU's pending exception number set
# to the vector. Nothing clears it until the guest's next exception, exit
# or interrupt; if the vCPU loop is asked to exit before then (a kick from
# another thread), it takes that number for a pending exception and
# delivers the same vector a second time, on top of the first delivery's
# frame: a guest interrupted in user mode then runs its handler in kernel
# mode with the user's GS, and triple-faults. The fix clears the number
# after the delivery, as the vCPU loop does after every other one.
#
# Only the x86_64 system emulator is built, with TCG and virtio-9p (the
# KVM lab's root file system) and nothing optional else; firmware comes
# from Debian's packages (seabios, qemu-system-data). The result is cached
# in build/qemu/ by source version and this script's hash: minutes on 2
# cores the first time, nothing after. The source comes from the
# Debian archive (deb-src of the release this machine runs), through a
# private apt state under build/qemu/apt: the system's apt setup is not
# changed.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=$top/build/qemu
log=$out/build.log
mkdir -p "$out"

die() {
	echo "qemu-build: $*" >&2
	exit 1
}

for t in apt-get dpkg-source ninja meson; do
	command -v "$t" >/dev/null || die "$t is missing: run scripts/install-deps.sh as root"
done

# A private apt state that knows the source packages of this release.
. /etc/os-release
codename=${VERSION_CODENAME:?/etc/os-release names no release}
apt=$out/apt
mkdir -p "$apt/lists/partial"
cat >"$apt/sources.list" <<EOF
deb-src http://deb.debian.org/debian $codename main
deb-src http://deb.debian.org/debian $codename-updates main
deb-src http://deb.debian.org/debian-security $codename-security main
EOF
aptopts=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o Dir::Etc::sourceparts=-
	-o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Get::List-Cleanup=0)
mkdir -p "$apt/cache/archives/partial"

# The newest source version is known once a day; a cached build of it is
# used without asking the archive again.
stamp=$apt/updated
if [ ! -e "$stamp" ] || [ -n "$(find "$stamp" -mmin +1440)" ]; then
	apt-get "${aptopts[@]}" -qq update >"$apt/update.log" 2>&1 ||
		die "could not read Debian's source index (see $apt/update.log)"
	touch "$stamp"
fi
version=$(apt-cache "${aptopts[@]}" showsrc qemu | sed -n 's/^Version: //p' | sort -V | tail -n 1)
[ -n "$version" ] || die "Debian's source index has no qemu"
key=$( (echo "$version"; cat "$0") | sha256sum | cut -c1-16)
bin=$out/$key/bin/qemu-system-x86_64
if [ -x "$bin" ]; then
	ln -sfn "$key" "$out/current"
	echo "$bin"
	exit 0
fi

echo "qemu-build: building QEMU $version (Debian source) with the SVM fix; log: $log" >&2
t0=$(date +%s)
work=$out/work
rm -rf "$work"
mkdir -p "$work"
(cd "$work" && apt-get "${aptopts[@]}" -qq source "qemu=$version") >"$log" 2>&1 ||
	die "could not fetch Debian's qemu source $version (see $log)"
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'qemu-*' | head -n 1)
[ -n "$src" ] || die "no source tree unpacked in $work (see $log)"

# The fix: one line after the INTR case's delivery. The anchor must be
# found exactly once, or the build stops (the source changed: look again).
f=$src/target/i386/tcg/sysemu/svm_helper.c
[ -f "$f" ] || die "$f is missing: this QEMU's layout differs; look again at the fix"
anchor='do_interrupt_x86_hardirq(env, vector, 1);'
n=$(grep -cF "$anchor" "$f" || true)
[ "$n" = 1 ] || die "$f: '$anchor' found $n times, expected once; look again at the fix"
sed -i "s|^\(\s*\)$anchor\$|&\n\1cs->exception_index = -1; /* delivered: nothing pending */|" "$f"
grep -qF 'cs->exception_index = -1; /* delivered: nothing pending */' "$f" ||
	die "$f: the fix did not apply"

mkdir -p "$work/build"
(
	cd "$work/build"
	"$src/configure" --target-list=x86_64-softmmu \
		--without-default-features --enable-tcg --enable-virtfs --enable-attr --enable-cap-ng \
		--disable-docs --disable-werror \
		--firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
	ninja -j"$(nproc)" qemu-system-x86_64
	install -D -m 755 qemu-system-x86_64 "$bin"
) >>"$log" 2>&1 || die "building QEMU failed (see $log)"
[ -x "$bin" ] || die "the build left no $bin (see $log)"
rm -rf "$work"
ln -sfn "$key" "$out/current"
echo "qemu-build: built in $(($(date +%s) - t0)) s: $bin" >&2
echo "$bin"
