#!/bin/sh
# The sch_plug output buffer (see netbuf_body.sh). Needs a kernel with
# sch_plug (the Xen lab's Debian kernel has it; this host's may not).
# needs: sch_plug
# (tests/run.sh runs it in the KVM lab, on Debian's kernel,
# where this machine's kernel lacks it)
BACKEND=plug
PREFIX=hanbp-
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || skip "needs root"
if ! "$HA_BUILD/bin/ha-netbuf" probe-plug >/dev/null 2>&1; then
	skip "this kernel has no sch_plug: the plug backend cannot run here (netbuf_nfqueue.sh covers this host)"
fi
. "$(dirname "$0")/netbuf_body.sh"
