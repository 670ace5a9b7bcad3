#!/bin/sh
# The NFQUEUE output buffer (see netbuf_body.sh).
BACKEND=nfqueue
PREFIX=hanbq-
. "$(dirname "$0")/netbuf_body.sh"
