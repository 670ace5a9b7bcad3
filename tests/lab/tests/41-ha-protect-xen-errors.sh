#!/bin/bash
# ha-protect's refusals on a real Xen, each with the operator's next step:
# a domain that does not exist, dom0, and a PV guest (this Xen has no shadow
# paging, so PV log-dirty is impossible and ha-protect must say so).
# lab-timeout: 300
set -u
. "$LAB_LIB"

T=$LAB_TMP
dom=hapv
trap 'xl destroy "$dom" >/dev/null 2>&1' EXIT

# expect_refusal WHAT PATTERN ARGS...: ha-protect exits 1 and says PATTERN.
expect_refusal() {
	local what=$1 pat=$2 rc
	shift 2
	ha-protect -F -b -n "$@" >"$T/out" 2>&1
	rc=$?
	cat "$T/out"
	[ "$rc" -eq 1 ] || lab_fail "$what: ha-protect exited $rc, not 1"
	grep -q -e "$pat" "$T/out" || lab_fail "$what: no '$pat' in its message"
}

expect_refusal "unknown domain" "no Xen domain named nosuchdomain: .xl list" xen:nosuchdomain
expect_refusal "dom0" "domain 0 cannot be protected" xen:0

# A PV guest: the same kernel and initramfs, type "pv".
domu_create "$dom" 'type = "pv"' >"$T/create.log" 2>&1 ||
	lab_fail "xl create of a PV domU failed: $(tail -n 2 "$T/create.log" | tr '\n' ' ')"
wait_for 60 sh -c "xl list $dom" || lab_fail "the PV domU did not appear"
if xl info | grep -q 'virt_caps.*shadow'; then
	expect_refusal "PV guest" "PV guest: ha-protect checkpoints PVH and HVM guests only" "xen:$dom"
else
	expect_refusal "PV guest" "PV guest: checkpointing needs log-dirty tracking, which for PV guests needs shadow paging" "xen:$dom"
fi
# Refused before touching it: the guest runs on.
xl list "$dom" | awk 'NR == 2 {exit !($5 !~ /[pscd]/)}' ||
	lab_fail "the PV domU is not running after the refusal (state $(domu_state "$dom"))"
exit 0
