#!/bin/bash
# A planned switchover on Xen: 50-ha-protect-vif's domU, client and output
# checks, under the plug backend, ending with `ha-ctl switchover` instead
# of the primary's death (both ends are this dom0). The last checkpoint leaves the domain suspended;
# once ha-receive has acknowledged it, ha-protect destroys its domain,
# hands it over, and exits 0 when the secondary's hot standby runs. No
# acknowledged increment may be lost (acked_lost=0), no reply may leave
# before its epoch's ACK, and the copy keeps answering. Prints the
# downtime as ha-protect measures it (the last pause to the secondary's
# answer) and the longest silence the client saw from the request on.
# lab-timeout: 1200
set -u
. "$LAB_LIB"

LAB_VIF_SWITCHOVER=1 LAB_VIF_BACKENDS=plug LAB_VIF_XL_REMUS=0 \
	exec bash "$(dirname "$0")/50-ha-protect-vif.sh"
