#!/bin/bash
# Live migration on Xen, side by side: 50-ha-protect-vif's domU, with the
# counter client running throughout, is migrated by ha-protect --migrate
# (pre-copy, the first checkpoint committed in ha-receive's hot standby,
# then the last checkpoint and the switchover), then by stock xl migrate,
# both to this dom0. Checks that each migrated domain answers and that no
# acknowledged increment is lost; prints each one's total time, the
# client's longest silence (the downtime it saw), ha-protect's own
# downtime figure, and the ratios to xl migrate's.
# lab-timeout: 1200
set -u
. "$LAB_LIB"

LAB_VIF_MIGRATE=1 exec bash "$(dirname "$0")/50-ha-protect-vif.sh"
