#!/bin/sh
# Makes the TLS material for a pair of ha-protect hosts (openssl CLI).
#
#   scripts/tls-gen.sh ca DIR [NAME]      a CA (DIR/ca.pem, DIR/ca.key), CN NAME
#   scripts/tls-gen.sh cert DIR HOST      HOST's key and certificate signed by
#                                         DIR's CA (DIR/HOST.pem, DIR/HOST.key)
#   scripts/tls-gen.sh psk FILE [IDENT]   a pre-shared key file IDENT:HEXKEY
#                                         (32 random octets), mode 0600
#
# Give both hosts ca.pem; each host its own HOST.pem and HOST.key. Keep
# ca.key off both hosts. Copy the PSK file to both hosts unchanged.
set -eu
umask 077
case "${1:-}" in
ca)
	dir=$2 name=${3:-ha-protect pair CA}
	mkdir -p "$dir"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/ca.key" -out "$dir/ca.pem" -days 3650 -subj "/CN=$name" \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
	chmod 644 "$dir/ca.pem"
	;;
cert)
	dir=$2 host=$3
	ext=$(mktemp)
	trap 'rm -f "$ext" "$dir/$host.csr"' EXIT
	printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:%s\n' \
		"$host" >"$ext"
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/$host.key" -out "$dir/$host.csr" -subj "/CN=$host" 2>/dev/null
	openssl x509 -req -in "$dir/$host.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
		-CAcreateserial -out "$dir/$host.pem" -days 825 -extfile "$ext" 2>/dev/null
	chmod 644 "$dir/$host.pem"
	;;
psk)
	file=$2 ident=${3:-ha-pair}
	printf '%s:%s\n' "$ident" "$(openssl rand -hex 32)" >"$file"
	;;
*)
	sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
