#!/bin/sh
# The district's certificates for Mosquitto with client certificates (deploy/mosquitto/README.md), with openssl:
#   pki.sh ca DIR                a CA: DIR/ca.pem (give to every client and the broker), DIR/ca.key (keep offline)
#   pki.sh server DIR HOST       the broker's certificate for HOST (a name or an IP address): DIR/server.pem, .key
#   pki.sh client DIR NAME       a client's: DIR/NAME.pem, DIR/NAME.key, CN=NAME (a box: its device id)
#   pki.sh revoke DIR NAME       revoke NAME's certificate and write DIR/crl.pem (mosquitto.conf: crlfile)
# EC P-256 keys, unencrypted (a service cannot type a passphrase): each key file is mode 600.
# Environment: DAYS (client and server certificates, default 825), CA_DAYS (default 3650).
set -eu

usage() { echo "usage: $0 ca DIR | server DIR HOST | client DIR NAME | revoke DIR NAME" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2
DAYS=${DAYS:-825} CA_DAYS=${CA_DAYS:-3650}
umask 077

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# sign NAME CN EXTENSIONS...: DIR/NAME.key (new), DIR/NAME.pem signed by the CA
sign() {
    name=$1 cn=$2
    shift 2
    [ -f "$dir/ca.key" ] || { echo "$dir/ca.key: no CA here (pki.sh ca $dir first)" >&2; exit 2; }
    [ ! -e "$dir/$name.pem" ] || { echo "$dir/$name.pem exists: revoke it or remove it first" >&2; exit 2; }
    { echo "basicConstraints=critical,CA:FALSE"; echo "subjectKeyIdentifier=hash"
      echo "authorityKeyIdentifier=keyid"; for e in "$@"; do echo "$e"; done; } > "$dir/$name.ext"
    newkey "$dir/$name.key"
    openssl req -new -key "$dir/$name.key" -subj "/CN=$cn" -out "$dir/$name.csr"
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
        -days "$DAYS" -extfile "$dir/$name.ext" -out "$dir/$name.pem" 2>/dev/null
    rm -f "$dir/$name.csr" "$dir/$name.ext"
    chmod 644 "$dir/$name.pem"
    echo "$dir/$name.pem $dir/$name.key (CN=$cn, $DAYS days)"
}

# openssl ca's bookkeeping, only for revocation (certificates are signed with openssl x509 above)
ca_conf() {
    touch "$dir/index.txt"
    [ -f "$dir/crlnumber" ] || echo 1000 > "$dir/crlnumber"
    cat > "$dir/ca.cnf" <<EOF
[ ca ]
default_ca = district
[ district ]
database = $dir/index.txt
crlnumber = $dir/crlnumber
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
default_crl_days = 3650
EOF
}

case $cmd in
ca)
    [ $# -eq 2 ] || usage
    mkdir -p "$dir"
    [ ! -e "$dir/ca.key" ] || { echo "$dir/ca.key exists: one CA per district" >&2; exit 2; }
    newkey "$dir/ca.key"
    openssl req -x509 -new -key "$dir/ca.key" -days "$CA_DAYS" -subj "/CN=emoedge district CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$dir/ca.pem"
    chmod 644 "$dir/ca.pem"
    echo "$dir/ca.pem $dir/ca.key (keep ca.key off the broker)";;
server)
    [ $# -eq 3 ] || usage
    case $3 in *[!0-9.]*) san="DNS:$3";; *) san="IP:$3";; esac
    sign server "$3" "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" "subjectAltName=$san";;
client)
    [ $# -eq 3 ] || usage
    # a device id: one topic level, and Home Assistant's object id characters (the ACL's %u is this name)
    case $3 in ''|*[!A-Za-z0-9_-]*) echo "client name '$3': letters, digits, _ and - only" >&2; exit 2;; esac
    [ ${#3} -le 64 ] || { echo "client name '$3': at most 64 characters" >&2; exit 2; }
    sign "$3" "$3" "keyUsage=critical,digitalSignature" "extendedKeyUsage=clientAuth";;
revoke)
    [ $# -eq 3 ] || usage
    [ -f "$dir/$3.pem" ] || { echo "$dir/$3.pem: no such certificate" >&2; exit 2; }
    ca_conf
    openssl ca -config "$dir/ca.cnf" -revoke "$dir/$3.pem" 2>/dev/null
    openssl ca -config "$dir/ca.cnf" -gencrl -out "$dir/crl.pem" 2>/dev/null
    mv "$dir/$3.pem" "$dir/$3.revoked.pem"
    chmod 644 "$dir/crl.pem"
    echo "$dir/crl.pem (revoked $3); copy it to the broker and reload it (systemctl reload mosquitto)";;
*) usage;;
esac
