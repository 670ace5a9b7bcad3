#!/bin/bash
# 45-ha-protect-drbd's DRBD pair and disk-recording domU, through host A's
# death, then back: haA returns and DRBD resyncs it from haB's bitmap; B
# protects the running copy to A (ha-protect --disk drbd:haB, ha-receive
# --drbd haA); a switchover brings it back to A, which must find its disk
# exactly at its memory (no record behind, none ahead), every record up to
# its count on haA.
# lab-timeout: 900
set -u
. "$LAB_LIB"

LAB_DRBD_FAILBACK=1 exec bash "$(dirname "$0")/45-ha-protect-drbd.sh"
