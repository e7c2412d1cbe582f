#!/usr/bin/env bash
# The by-hand baseline of `kubehsm init` for bench/run: the same cluster PKI (3 CAs and the
# service-account key in the token, every leaf, 5 kubeconfigs; the same 23 files) made the way an
# operator would with the command-line tools, one process per step:
#   pkcs11-tool --keypairgen            CA and SA key pairs in the token
#   openssl req -x509 / x509 -req       signing through pkcs11-provider (pkcs11: URIs)
#   openssl req -newkey                 leaf key + CSR
#   base64 + a here-document            the kubeconfig files, written as an operator would by hand
# BENCHMARK ONLY: the PIN reaches pkcs11-tool on its command line and pkcs11-provider through a
# `pkcs11-module-token-pin = file:` config in a private temp directory, which kubehsm never does.
#
# usage: openssl-ceremony.sh --out DIR --softhsm-conf FILE --token LABEL --pin-file FILE
#                            --type ECDSA-P256|RSA-2048 [--node-name N] [--advertise-address IP]
set -euo pipefail

out="" conf="" token="" pin_file="" type="RSA-2048" node="cp1" addr="10.0.0.10"
module="${KUBEHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2" ;;
    --softhsm-conf) conf="$2" ;;
    --token) token="$2" ;;
    --pin-file) pin_file="$2" ;;
    --type) type="$2" ;;
    --node-name) node="$2" ;;
    --advertise-address) addr="$2" ;;
    *) echo "openssl-ceremony: unknown argument $1" >&2; exit 1 ;;
  esac
  shift 2
done
[[ -n "$out" && -n "$conf" && -n "$token" && -n "$pin_file" ]] || { echo "openssl-ceremony: missing arguments" >&2; exit 1; }
export SOFTHSM2_CONF="$conf"
case "$type" in
  ECDSA-P256) p11type="EC:prime256v1"; newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
  RSA-2048) p11type="rsa:2048"; newkey=(-newkey rsa:2048) ;;
  *) echo "openssl-ceremony: --type ECDSA-P256 or RSA-2048" >&2; exit 1 ;;
esac

provider="${PKCS11_PROVIDER_SO:-/usr/lib/$(uname -m)-linux-gnu/ossl-modules/pkcs11.so}"
[[ -f "$provider" ]] || provider="$(openssl version -m | sed -E 's/^MODULESDIR: "(.*)"$/\1/')/pkcs11.so"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/openssl.cnf" <<CNF
openssl_conf = openssl_init
[openssl_init]
providers = providers
[providers]
default = default_sect
pkcs11 = pkcs11_sect
[default_sect]
activate = 1
[pkcs11_sect]
module = $provider
pkcs11-module-path = $module
pkcs11-module-token-pin = file:$pin_file
pkcs11-module-quirks = no-deinit
activate = 1
[req]
distinguished_name = dn
[dn]
CNF
pki="$out/pki"
mkdir -p "$pki/etcd"
umask 022

uri() { echo "pkcs11:token=$token;object=$1;type=$2"; }

# 1. Key pairs in the token (one pkcs11-tool process each).
id=1
for label in ca etcd-ca front-proxy-ca sa; do
  pkcs11-tool --module "$module" --token-label "$token" --login --pin "$(<"$pin_file")" --keypairgen \
    --key-type "$p11type" --label "$label" --id "0$id" --usage-sign --sensitive --private >/dev/null 2>&1
  id=$((id + 1))
done

# From here on every openssl process loads pkcs11-provider (pkcs11-tool must not: it fails to start
# with the provider in its OpenSSL config).
export OPENSSL_CONF="$tmp/openssl.cnf"

# 2. CA certificates, self-signed in the token (10 years, as kubeadm).
ca_cert() {  # file CN
  openssl req -x509 -new -key "$(uri "$3" private)" -subj "/CN=$2" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign" \
    -addext "subjectKeyIdentifier=hash" -out "$pki/$1.crt"
}
ca_cert ca kubernetes ca
ca_cert front-proxy-ca front-proxy-ca front-proxy-ca
ca_cert etcd/ca etcd-ca etcd-ca

# 3. sa.pub: the public half of the token's SA key.
openssl pkey -pubin -in "$(uri sa public)" -pubout -out "$pki/sa.pub"
chmod 600 "$pki/sa.pub"

# 4. Leaves: key + CSR in one process, then signed by the CA key in the token.
leaf() {  # file CA-file CA-label subject eku [san]
  local file="$1" ca_file="$2" ca_label="$3" subj="$4" eku="$5" san="${6:-}"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    echo "authorityKeyIdentifier=keyid"
    [[ -n "$san" ]] && echo "subjectAltName=$san"
  } > "$tmp/ext"
  openssl req -new "${newkey[@]}" -nodes -keyout "$pki/$file.key" -subj "$subj" -out "$tmp/req.csr" 2>/dev/null
  openssl x509 -req -in "$tmp/req.csr" -CA "$pki/$ca_file.crt" -CAkey "$(uri "$ca_label" private)" \
    -CAserial "$tmp/serial" -CAcreateserial -days 365 -sha256 -extfile "$tmp/ext" -out "$pki/$file.crt" 2>/dev/null
}
api_sans="DNS:$node,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1,IP:$addr"
etcd_sans="DNS:$node,DNS:localhost,IP:$addr,IP:127.0.0.1,IP:0:0:0:0:0:0:0:1"
leaf apiserver ca ca "/CN=kube-apiserver" serverAuth "$api_sans"
leaf apiserver-kubelet-client ca ca "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client" clientAuth
leaf front-proxy-client front-proxy-ca front-proxy-ca "/CN=front-proxy-client" clientAuth
leaf etcd/server etcd/ca etcd-ca "/CN=$node" serverAuth,clientAuth "$etcd_sans"
leaf etcd/peer etcd/ca etcd-ca "/CN=$node" serverAuth,clientAuth "$etcd_sans"
leaf etcd/healthcheck-client etcd/ca etcd-ca "/CN=kube-etcd-healthcheck-client" clientAuth
leaf apiserver-etcd-client etcd/ca etcd-ca "/CN=kube-apiserver-etcd-client" clientAuth

# 5. Kubeconfigs: a client key and certificate signed by `ca`, written out as YAML by hand (the
# layout `kubectl config` writes; Debian 12's kubectl 1.20 panics in `config set-credentials`).
kubeconfig() {  # file user subject
  local file="$1" user="$2" subj="$3" kc="$out/$1"
  leaf "../kc-$file" ca ca "$subj" clientAuth
  (umask 077; cat > "$kc.tmp" <<YAML
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: $(base64 -w0 < "$pki/ca.crt")
    server: https://$addr:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: $user
  name: $user@kubernetes
current-context: $user@kubernetes
preferences: {}
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 < "$out/kc-$file.crt")
    client-key-data: $(base64 -w0 < "$out/kc-$file.key")
YAML
  )
  mv "$kc.tmp" "$kc"
  rm -f "$out/kc-$file.crt" "$out/kc-$file.key"
}
kubeconfig admin.conf kubernetes-admin "/O=kubeadm:cluster-admins/CN=kubernetes-admin"
kubeconfig super-admin.conf kubernetes-super-admin "/O=system:masters/CN=kubernetes-super-admin"
kubeconfig kubelet.conf "system:node:$node" "/O=system:nodes/CN=system:node:$node"
kubeconfig controller-manager.conf system:kube-controller-manager "/CN=system:kube-controller-manager"
kubeconfig scheduler.conf system:kube-scheduler "/CN=system:kube-scheduler"
