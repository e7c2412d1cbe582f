// The Kubernetes minor versions kubehsm follows (1.32 .. 1.36) and the one table of what kubeadm's
// PKI does differently between them (spec kubeadm-versions.md). Every version-dependent choice of
// the profiles, kubeconfig files, init, issue, renew, verify and sign-dir asks this table.
// Pure data and computation.
#pragma once

#include <compare>
#include <span>
#include <string>
#include <string_view>

#include "common/key_type.h"
#include "common/status.h"

namespace kubehsm::signer::pki {

// A Kubernetes minor version of the 1.x line ("1.34" is {34}).
struct KubernetesVersion {
  int minor = 36;
  auto operator<=>(const KubernetesVersion&) const = default;
};

inline constexpr KubernetesVersion kOldestKubernetesVersion{32};
inline constexpr KubernetesVersion kNewestKubernetesVersion{36};

// The version used when neither the kubeadm config (kubernetesVersion) nor --kubernetes-version
// gives one: the newest supported minor.
constexpr KubernetesVersion DefaultKubernetesVersion() { return kNewestKubernetesVersion; }

// "1.36".
std::string VersionName(KubernetesVersion v);
// "1.32..1.36".
std::string SupportedVersionRange();

// Parses kubeadm's kubernetesVersion / --kubernetes-version: "v1.36.0", "1.33.2", "v1.34" (an
// optional "v", major 1, a minor, an optional patch with an optional "-pre.release"/"+build"
// suffix). Fails with kInvalidArgument naming `what` for labels ("stable-1.34", "latest": kubehsm
// does not resolve them over the network), other majors, a malformed string, or a minor outside
// 1.32..1.36 (the message names the supported range).
Result<KubernetesVersion> ParseKubernetesVersion(std::string_view text, std::string_view what);

// The differences between the supported minors: each changed in `since` and stays so after.
enum class VersionChange {
  // apiserver-kubelet-client has CN=kube-apiserver-kubelet-client only (no O=kubeadm:cluster-admins).
  kApiserverKubeletClientWithoutOrganization,
  // init writes kubelet.conf for the control-plane node on the local endpoint
  // (https://advertiseAddress:bindPort), not on controlPlaneEndpoint.
  kKubeletConfLocalEndpoint,
  // ECDSA-P384 is accepted as encryptionAlgorithm.
  kEcdsaP384,
  // apiserver SANs leave out an empty node name and kubernetes.default.svc.<domain> for an empty
  // dnsDomain; etcd server/peer SANs leave out an empty node name.
  kOmitEmptySanNames,
  // a self-signed CA gets a DNS SAN from its CN only when the CN is non-empty.
  kCaDnsSanOnlyFromNonEmptyCn,
};

struct VersionChangeInfo {
  VersionChange change;
  KubernetesVersion since;
  std::string_view description;  // one line, for documentation and messages
};

// The table, in the order of `since`.
std::span<const VersionChangeInfo> VersionChanges();

// True when `change` is in effect at version `v`.
bool HasChange(KubernetesVersion v, VersionChange change);

// The first minor with `change`.
KubernetesVersion ChangedIn(VersionChange change);

// OK when kubeadm at version `v` accepts `type` as encryptionAlgorithm; else kInvalidArgument
// naming the version and the first one that accepts it. (ECDSA-P521 is never a kubeadm algorithm;
// ValidateClusterConfig refuses it separately.)
Status CheckEncryptionAlgorithm(KeyType type, KubernetesVersion v);

}  // namespace kubehsm::signer::pki
