#!/usr/bin/env bash
# Builds, with the openssl CLI only, exactly what
#   kubeadm certs generate-csr --config CONFIG --cert-dir OUT/pki --kubeconfig-dir OUT
# leaves behind (kubeadm is not a Debian package; spec kubeadm-pki.md §6). Used by the sign-dir
# tests. Usage: generate_csr_fixture.sh OUT NODE_NAME ADVERTISE_ADDRESS [ec|rsa] [MINOR] [EXTRA_APISERVER_SANS]
# MINOR (default 36, kubehsm's default version) is the kubeadm 1.MINOR being mirrored: from 36
# the apiserver-kubelet-client CSR has CN only (no O=kubeadm:cluster-admins; spec
# kubeadm-versions.md), up to 35 it is O=kubeadm:cluster-admins + CN.
#
# How it mirrors kubeadm (cmd/kubeadm/app/phases/certs + kubeconfig, CreateCSR / WriteCSR):
#  - one fresh key per file, of the cluster's encryptionAlgorithm: `ec` = ECDSA-P256 (kubeadm
#    ECDSA-P256), `rsa` = RSA-2048 (kubeadm's default). Keys are written like client-go's
#    MarshalPrivateKeyToPEM: SEC1 "EC PRIVATE KEY" / PKCS#1 "RSA PRIVATE KEY" (openssl ec/rsa
#    -traditional converts openssl's PKCS#8 output), mode 0600;
#  - each CSR (x509.CreateCertificateRequest) has the subject O=... then CN=... of spec §1/§4 and,
#    for the serving certificates, a subjectAltName in its extensionRequest with the SANs of §1.1/
#    §1.2 (DNS sorted ascending, then IPs in kubeadm's order). No KeyUsage / ExtKeyUsage is
#    requested (kubeadm requests none; the signing CA adds them). Mode 0600;
#  - leaves: OUT/pki/<base>.key + OUT/pki/<base>.csr for apiserver, apiserver-kubelet-client,
#    front-proxy-client, apiserver-etcd-client, etcd/server, etcd/peer, etcd/healthcheck-client
#    (the CSR writer makes directories 0700);
#  - kubeconfigs: OUT/<name>.conf, the full client-go structure (cluster, context, user, server)
#    with only client-key-data set (certificate-authority-data and client-certificate-data are
#    empty and so absent), and OUT/<name>.conf.csr with CN/O and no SANs, for admin.conf,
#    super-admin.conf, kubelet.conf, controller-manager.conf, scheduler.conf. No CA file and no
#    sa.* are written (generate-csr writes neither).
# The config it corresponds to: nodeRegistration.name NODE_NAME, localAPIEndpoint.advertiseAddress
# ADVERTISE_ADDRESS (port 6443), no controlPlaneEndpoint, serviceSubnet 10.96.0.0/12, dnsDomain
# cluster.local, clusterName kubernetes, no extra SANs. EXTRA_APISERVER_SANS (openssl form, e.g.
# "DNS:lb.example.com,IP:10.100.1.1") adds what the config's controlPlaneEndpoint and
# apiServer.certSANs give to the apiserver CSR.
set -euo pipefail
out=$1 node=$2 adv=$3 algo=${4:-ec} minor=${5:-36} extra_sans=${6:-}
umask 077
mkdir -p "$out/pki/etcd"

newkey() {  # newkey KEYFILE: a fresh key in kubeadm's PEM form
  if [[ $algo == ec ]]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.p8" 2>/dev/null
    openssl ec -in "$1.p8" -out "$1" 2>/dev/null
  else
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.p8" 2>/dev/null
    openssl rsa -traditional -in "$1.p8" -out "$1" 2>/dev/null
  fi
  rm -f "$1.p8"
}

csr() {  # csr KEY CSR SUBJECT [SAN]
  local args=(req -new -key "$1" -out "$2" -subj "$3" -sha256)
  [[ -n ${4:-} ]] && args+=(-addext "subjectAltName=$4")
  openssl "${args[@]}"
}

leaf() {  # leaf BASE SUBJECT [SAN]
  newkey "$out/pki/$1.key"
  csr "$out/pki/$1.key" "$out/pki/$1.csr" "$2" "${3:-}"
}

leaf apiserver "/CN=kube-apiserver" \
  "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:$node,IP:10.96.0.1,IP:$adv${extra_sans:+,$extra_sans}"
if (( minor >= 36 )); then
  leaf apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client"
else
  leaf apiserver-kubelet-client "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client"
fi
leaf front-proxy-client "/CN=front-proxy-client"
leaf etcd/server "/CN=$node" "DNS:localhost,DNS:$node,IP:$adv,IP:127.0.0.1,IP:::1"
leaf etcd/peer "/CN=$node" "DNS:localhost,DNS:$node,IP:$adv,IP:127.0.0.1,IP:::1"
leaf etcd/healthcheck-client "/CN=kube-etcd-healthcheck-client"
leaf apiserver-etcd-client "/CN=kube-apiserver-etcd-client"

kubeconfig() {  # kubeconfig NAME CN [O]: key inside the kubeconfig only, CSR beside it
  local name=$1 cn=$2 o=${3:-} key subj
  key=$(mktemp "$out/.key.XXXXXX")
  newkey "$key"
  subj="/CN=$cn"
  [[ -n $o ]] && subj="/O=$o/CN=$cn"
  csr "$key" "$out/$name.csr" "$subj"
  local server="https://$adv:6443"
  cat > "$out/$name" <<EOF
apiVersion: v1
clusters:
- cluster:
    server: $server
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: $cn
  name: $cn@kubernetes
current-context: $cn@kubernetes
kind: Config
preferences: {}
users:
- name: $cn
  user:
    client-key-data: $(base64 -w0 < "$key")
EOF
  rm -f "$key"
}

kubeconfig admin.conf kubernetes-admin kubeadm:cluster-admins
kubeconfig super-admin.conf kubernetes-super-admin system:masters
kubeconfig kubelet.conf "system:node:$node" system:nodes
kubeconfig controller-manager.conf system:kube-controller-manager
kubeconfig scheduler.conf system:kube-scheduler
