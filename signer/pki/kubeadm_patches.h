// The kubeadm patch files that make kubeadm's own static-pod manifests run with `kubehsm serve` as
// kube-apiserver's external service-account token signer. Pure: options in, file names and
// contents out; nothing is read from or written to disk here.
//
// kubeadm (1.32+) writes --service-account-key-file and --service-account-signing-key-file into
// kube-apiserver's manifest and --service-account-private-key-file into kube-controller-manager's,
// even in external-CA mode where sa.key does not exist. kube-apiserver refuses both key flags next
// to --service-account-signing-endpoint (also with an empty value), so the flags must be removed,
// not blanked. kubeadm applies the files of a patch directory (`kubeadm init|join|upgrade
// --patches DIR`, or `patches.directory` in InitConfiguration/JoinConfiguration/
// UpgradeConfiguration) named TARGET[suffix][+PATCHTYPE].EXT, in the lexical order of the names.
//
// The files do not depend on flag positions (kubeadm sorts the flags, so positions change with the
// config): the removals are strategic-merge `$deleteFromPrimitiveList/command` directives naming
// the exact flag kubeadm writes (which is why the certificates directory must be known), and the
// additions are RFC 6902 `add` operations at the end of the command list (`/command/-`) after a
// `test` that the first container is the expected one.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "signer/pki/versions.h"

namespace kubehsm::signer::pki {

struct KubeadmPatchOptions {
  // The cluster's minor version: selects the ExternalServiceAccountTokenSigner feature gate
  // (added for 1.32 and 1.33 only, where it is alpha and off; beta and on from 1.34, GA in 1.36).
  KubernetesVersion kubernetes_version = DefaultKubernetesVersion();
  // ClusterConfiguration.certificatesDir: kubeadm's SA key flags name files in it.
  std::string cert_dir = "/etc/kubernetes/pki";
  // The Unix socket `kubehsm serve --socket` listens on; becomes
  // --service-account-signing-endpoint, and its directory is mounted into kube-apiserver's pod.
  std::string socket_path;
};

// One patch file for kubeadm's patch directory.
struct KubeadmPatchFile {
  std::string name;     // e.g. "kube-apiserver-kubehsm-1+strategic.json"
  std::string content;  // JSON, newline-terminated
  std::string summary;  // one line saying what the file does, for the CLI's report
};

// The name of the volume (and volumeMount) that carries the socket's directory.
inline constexpr const char* kKubehsmSocketVolume = "kubehsm-signer";

// Checks `socket_path` for use as the signing endpoint in a static pod: an absolute, normalised
// filesystem path (no "." or ".." components, no trailing "/", no repeated "/") of at most 107
// bytes (sun_path), of printable ASCII without spaces or commas, not directly under "/" (its
// directory is mounted into the pod, and mounting the host's root is refused). Abstract sockets
// ("@name") and "unix://" URLs are refused. kInvalidArgument naming --socket otherwise.
Status CheckSignerSocketPath(const std::string& socket_path);

// Returns the patch files, in the order kubeadm applies them (lexical by name):
//  1. kube-apiserver-kubehsm-1+strategic.json: deletes
//     --service-account-key-file=<cert_dir>/sa.pub and
//     --service-account-signing-key-file=<cert_dir>/sa.key from the kube-apiserver container's
//     command; adds the hostPath volume of the socket's directory (type Directory) and its
//     read-only volumeMount at the same path (connecting to a Unix socket needs write permission
//     on the socket file only, which a read-only mount does not take away);
//  2. kube-apiserver-kubehsm-2+json.json: tests that containers/0 is kube-apiserver, then appends
//     --service-account-signing-endpoint=<socket_path> and, for 1.32/1.33,
//     --feature-gates=ExternalServiceAccountTokenSigner=true (kube-apiserver merges repeated
//     --feature-gates flags);
//  3. kube-controller-manager-kubehsm+strategic.json: deletes
//     --service-account-private-key-file=<cert_dir>/sa.key (this disables only the legacy
//     service-account token controller, which fills Secrets of type
//     kubernetes.io/service-account-token).
// <cert_dir> is cleaned as kubeadm's filepath.Join does ("/etc/kubernetes/pki/" and
// "/etc/kubernetes//pki" give "/etc/kubernetes/pki/sa.pub"). --service-account-issuer and every
// other flag are left alone. Fails with kInvalidArgument for a relative cert_dir (kubeadm requires
// an absolute certificatesDir), a socket path CheckSignerSocketPath refuses, or a version outside
// the supported range.
Result<std::vector<KubeadmPatchFile>> KubeadmPatches(const KubeadmPatchOptions& options);

}  // namespace kubehsm::signer::pki
