#!/bin/bash
# 45-ha-protect-drbd's DRBD pair and disk-recording domU, ending in a
# planned switchover instead of host A's death: ha-protect destroys the
# domain and makes haA Secondary before it hands the domain over; the
# secondary promotes haB, attaches it to its hot standby and runs it. The
# copy must find its disk exactly at its memory (no record behind, none
# ahead), every record up to its count on haB; ha-protect exits 0.
# lab-timeout: 900
set -u
. "$LAB_LIB"

LAB_DRBD_SWITCHOVER=1 exec bash "$(dirname "$0")/45-ha-protect-drbd.sh"
