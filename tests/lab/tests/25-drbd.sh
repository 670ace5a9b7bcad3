#!/bin/bash
# DRBD in dom0, the substrate for a DRBD disk adapter: the Debian kernel's
# drbd module (8.4) loads (after crc32c_generic: busybox modprobe ignores
# soft dependencies), drbd-utils drive it, and a single-node resource on a
# loop device stores and returns data through /dev/drbd0.
# lab-timeout: 180
. "$LAB_LIB"
dev=""
cleanup() {
	drbdsetup down labr0 >/dev/null 2>&1
	[ -n "$dev" ] && losetup -d "$dev" 2>/dev/null
	return 0
}
trap cleanup EXIT

modprobe crc32c_generic
modprobe drbd >"$LAB_TMP/modprobe" 2>&1 || lab_fail "modprobe drbd: $(tail -n 1 "$LAB_TMP/modprobe")"
[ -r /proc/drbd ] || lab_fail "drbd loaded but /proc/drbd is missing"
ver=$(sed -n 's/^version: \([^ ]*\).*/\1/p' /proc/drbd)
echo "drbd $ver"
dd if=/dev/zero of="$LAB_TMP/disk" bs=1M count=0 seek=64 2>/dev/null
dev=$(losetup -f) && losetup "$dev" "$LAB_TMP/disk" || lab_fail "no free loop device"
run() { # CMD...: run, log, fail with its last line
	"$@" >>"$LAB_TMP/drbd.log" 2>&1 || lab_fail "$*: $(tail -n 1 "$LAB_TMP/drbd.log")"
}
run drbdmeta --force 0 v08 "$dev" internal create-md
run drbdsetup new-resource labr0
run drbdsetup new-minor labr0 0 0
run drbdsetup attach 0 "$dev" "$dev" internal
drbdsetup primary 0 --force >>"$LAB_TMP/drbd.log" 2>&1 || run drbdsetup primary labr0 --force
wait_for 10 test -b /dev/drbd0 || lab_fail "/dev/drbd0 did not appear"
dd if=/dev/urandom of="$LAB_TMP/data" bs=64k count=32 2>/dev/null
dd if="$LAB_TMP/data" of=/dev/drbd0 bs=64k conv=fsync 2>>"$LAB_TMP/drbd.log" || lab_fail "writing /dev/drbd0 failed"
echo 3 >/proc/sys/vm/drop_caches
dd if=/dev/drbd0 of="$LAB_TMP/back" bs=64k count=32 2>>"$LAB_TMP/drbd.log" || lab_fail "reading /dev/drbd0 failed"
cmp -s "$LAB_TMP/data" "$LAB_TMP/back" || lab_fail "/dev/drbd0 returned other data than written"
grep -q 'ro:Primary' /proc/drbd || { cat /proc/drbd; lab_fail "minor 0 is not Primary"; }
run drbdsetup down labr0
grep -q '^ 0:' /proc/drbd && lab_fail "minor 0 still configured after down"
lab_figure "drbd_version=$ver"
exit 0
