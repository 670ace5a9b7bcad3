#!/bin/sh
# ha-migrate: live migration of a domain to a host where ha-receive runs,
# on the checkpoint machinery (ha-protect --migrate): pre-copy rounds while
# the domain runs, then one last checkpoint and a switchover. With
# --postcopy the domain runs on the destination right after the pre-copy
# and the pages still dirty follow (docs/operator-guide.md, "Postcopy").
set -u

usage() {
	cat <<EOF
usage: ha-migrate [--postcopy] [HA-PROTECT OPTION...] DOMAIN PEER
Migrates DOMAIN (kvm:NAME, xen:NAME) to PEER (host:port), where ha-receive
listens: ha-protect --migrate with the options given (--tls-psk FILE,
--precopy-rounds N, --converge-pages N, ...; ha-protect(8)).
  --postcopy   after the pre-copy, run the domain on PEER at once; the pages
               it has not got yet follow, those it touches first. For a guest
               that writes faster than the link carries (a pre-copy that
               does not converge). ha-vm domains only. While it runs, neither
               host holds the whole domain: a link lost meanwhile loses it.
Exit status: 0 the domain runs on PEER; 1 the migration failed and the
domain runs on here (unless a message says otherwise); 2 a usage error;
4 a postcopy failed midway: the domain is left suspended here.
EOF
}

case ${1:-} in
-h | --help) usage; exit 0 ;;
'') usage >&2; exit 2 ;;
esac
here=$(dirname -- "$(readlink -f -- "$0")")
if [ -x "$here/ha-protect" ]; then
	exec "$here/ha-protect" --migrate "$@"
fi
command -v ha-protect >/dev/null || { echo "ha-migrate: ha-protect is not installed" >&2; exit 1; }
exec ha-protect --migrate "$@"
