#!/bin/bash
# ha-receive --check on a real Xen dom0, for what only a Xen host can
# show: the domain's xl configuration read on the secondary (libxlutil)
# and each misconfiguration in it found, one line each:
#   - no configuration of the domain on this host: a warning, not a pass;
#   - a vif whose bridge does not exist here: FAIL naming the vif;
#   - a domain larger than Xen's free memory: FAIL with both figures;
#   - a restore directory too small for the image (HA_XEN_RESTORE_FILE):
#     FAIL;
#   - a configuration that does not parse: FAIL with xl's own message;
#   - a good configuration (an existing bridge, a domain that fits): every
#     check passes;
#   - DRBD: a resource Primary here given to the secondary, and one that
#     is not configured, FAIL; with the drbd module not loaded, FAIL saying
#     so.
# lab-timeout: 300
set -u
. "$LAB_LIB"

T=$LAB_TMP
br=hapfbr0
cleanup() {
	ip link del "$br" 2>/dev/null
	drbdsetup down hapf >/dev/null 2>&1
	[ -n "${lo:-}" ] && losetup -d "$lo" 2>/dev/null
	umount "$T/small" 2>/dev/null
	return 0
}
trap cleanup EXIT
(umask 077 && printf 'lab:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$T/psk")

# check_rx NAME [ENV...] -- [ARGS...]: ha-receive --check; its output in $T/NAME.
check_rx() {
	local name=$1 rc
	shift
	local envs=()
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	env "${envs[@]}" ha-receive --backend xen --domain hapf --tls-psk "$T/psk" \
		--listen 127.0.0.1:7460 --fence-cmd /bin/true --check "$@" >"$T/$name" 2>&1
	rc=$?
	echo "--- $name (exit $rc)"
	cat "$T/$name"
	return "$rc"
}
has() { grep -q -e "$2" "$T/$1" || lab_fail "$1: no '$2' in the preflight's output"; }

ip link add "$br" type bridge || lab_fail "cannot create bridge $br"
free=$(xl info | sed -n 's/^free_memory *: *//p')
[ -n "$free" ] || lab_fail "xl info gives no free_memory"
echo "Xen's free memory: $free MiB"

check_rx none HA_XEN_CONFIG= -- && true
has none "warn no xl configuration of xen:hapf on this host"

cat >"$T/good.cfg" <<CFG
name = "hapf"
type = "pvh"
memory = 32
vif = [ "mac=00:16:3e:4a:00:01,bridge=$br" ]
CFG
check_rx good HA_XEN_CONFIG="$T/good.cfg" -- || lab_fail "a good configuration failed the preflight"
has good "ok   bridge $br (vif 0 of $T/good.cfg) is there"
has good "ok   hypervisor memory: [0-9]* MiB free for xen:hapf's 32 MiB"
has good "ok   memory here: [0-9]* MiB available to hold the copy of xen:hapf's 32 MiB"

cat >"$T/nobr.cfg" <<CFG
name = "hapf"
memory = 32
vif = [ "mac=00:16:3e:4a:00:01,bridge=$br", "mac=00:16:3e:4a:00:02,bridge=nosuchbr9" ]
CFG
check_rx nobr HA_XEN_CONFIG="$T/nobr.cfg" -- && lab_fail "a missing bridge passed the preflight"
has nobr "FAIL bridge nosuchbr9 (vif 1 of $T/nobr.cfg): no such bridge on this host"

big=$((free + 1024))
printf 'name = "hapf"\nmemory = %d\n' "$big" >"$T/big.cfg"
check_rx big HA_XEN_CONFIG="$T/big.cfg" -- && lab_fail "a domain larger than Xen's free memory passed"
has big "FAIL hypervisor memory: [0-9]* MiB free, and xen:hapf needs $big MiB"

mkdir -p "$T/small"
mount -t tmpfs -o size=8m tmpfs "$T/small" || lab_fail "cannot mount a small tmpfs"
check_rx tiny HA_XEN_CONFIG="$T/good.cfg" HA_XEN_RESTORE_FILE=1 HA_XEN_SAVE_DIR="$T/small" -- &&
	lab_fail "a restore directory too small passed"
has tiny "FAIL restore image directory $T/small: [0-9]* MiB free, and a failover writes an image of 32 MiB"

printf 'name = "hapf"\nmemory = = 3\n' >"$T/bad.cfg"
check_rx bad HA_XEN_CONFIG="$T/bad.cfg" -- && lab_fail "a configuration that does not parse passed"
has bad "FAIL the configuration of xen:hapf here: .*config parsing error"

# DRBD on the secondary.
if ! [ -e /proc/drbd ]; then
	check_rx nodrbd HA_XEN_CONFIG="$T/good.cfg" -- --drbd hapf && lab_fail "no DRBD module passed"
	has nodrbd "FAIL DRBD hapf: DRBD is not loaded (no /proc/drbd): modprobe drbd"
fi
modprobe crc32c_generic
modprobe drbd >"$T/modprobe" 2>&1 || lab_fail "modprobe drbd: $(tail -n 1 "$T/modprobe")"
check_rx unconf HA_XEN_CONFIG="$T/good.cfg" -- --drbd nosuchres && lab_fail "an unknown DRBD resource passed"
has unconf "FAIL .*nosuchres"
dd if=/dev/zero of="$T/d.img" bs=1M count=0 seek=16 2>/dev/null
lo=$(losetup -f) && losetup "$lo" "$T/d.img" || lab_fail "no free loop device"
drbdmeta --force 5 v08 "$lo" internal create-md >"$T/drbd.log" 2>&1 || lab_fail "drbdmeta failed"
{ drbdsetup new-resource hapf && drbdsetup new-minor hapf 5 0 &&
	drbdsetup attach 5 "$lo" "$lo" internal && drbdsetup primary 5 --force; } >>"$T/drbd.log" 2>&1 ||
	lab_fail "cannot set up DRBD resource hapf: $(tail -n 1 "$T/drbd.log")"
check_rx primary HA_XEN_CONFIG="$T/good.cfg" -- --drbd hapf && lab_fail "a Primary resource passed on the secondary"
has primary "FAIL DRBD hapf is Primary here .*the replica must be Secondary"
drbdsetup secondary 5 >>"$T/drbd.log" 2>&1 || lab_fail "drbdsetup secondary failed"
check_rx secondary HA_XEN_CONFIG="$T/good.cfg" -- --drbd hapf ||
	lab_fail "a Secondary resource failed the preflight"
has secondary "ok   DRBD hapf (/dev/drbd5): Secondary here, protocol C (version 8.4"
exit 0
