#!/bin/bash
# 50-ha-protect-vif's domU, client and checks through a failback: the
# primary dies (plug run) and the copy takes over; the copy is protected
# back (nfqueue run: the returning host is this dom0 again) and a
# switchover hands it back. Each end is judged as in 50: no reply before
# its epoch's ACK, acked_lost=0, the client answered after it.
# lab-timeout: 900
set -u
. "$LAB_LIB"

LAB_VIF_FAILBACK=1 LAB_VIF_BACKENDS="plug nfqueue" LAB_VIF_XL_REMUS=0 \
	exec bash "$(dirname "$0")/50-ha-protect-vif.sh"
