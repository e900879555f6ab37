#!/bin/sh
# make certs: a throwaway local CA and a server certificate for localhost and
# 127.0.0.1, signed by it, for the demo and the TLS tests. Writes DIR (default
# certs/): ca.pem (give it to `chat --ca`), server.pem and server.key (give
# them to `chatd --tls-cert/--tls-key`). Keys never leave DIR.
set -eu
dir=${1:-certs}
mkdir -p "$dir"
cd "$dir"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=chat demo CA" -keyout ca.key -out ca.pem \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
  -extfile server.ext -out server.pem 2>/dev/null
rm -f server.csr server.ext ca.srl
chmod 644 ca.pem server.pem
echo "wrote $(pwd)/ca.pem server.pem server.key"
