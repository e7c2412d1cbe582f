#include "signer/pki/versions.h"

#include <array>
#include <cctype>
#include <charconv>

namespace kubehsm::signer::pki {
namespace {

constexpr std::array<VersionChangeInfo, 5> kChanges = {{
    {VersionChange::kKubeletConfLocalEndpoint,
     {33},
     "kubelet.conf of the control-plane node written by init uses the local endpoint (advertiseAddress:bindPort) "
     "instead of controlPlaneEndpoint"},
    {VersionChange::kEcdsaP384, {34}, "ECDSA-P384 is accepted as encryptionAlgorithm"},
    {VersionChange::kOmitEmptySanNames,
     {34},
     "apiserver/etcd SANs leave out an empty node name; apiserver leaves out kubernetes.default.svc.<domain> "
     "when dnsDomain is empty"},
    {VersionChange::kCaDnsSanOnlyFromNonEmptyCn,
     {34},
     "a self-signed CA gets a DNS SAN from its CN only when the CN is non-empty"},
    {VersionChange::kApiserverKubeletClientWithoutOrganization,
     {36},
     "apiserver-kubelet-client has CN=kube-apiserver-kubelet-client only (no O=kubeadm:cluster-admins)"},
}};

// Reads decimal digits at the front of `s` into `out`; false if there are none or they overflow.
bool TakeNumber(std::string_view& s, int& out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec != std::errc() || ptr == s.data()) return false;
  s.remove_prefix(static_cast<size_t>(ptr - s.data()));
  return true;
}

}  // namespace

std::string VersionName(KubernetesVersion v) { return "1." + std::to_string(v.minor); }

std::string SupportedVersionRange() {
  return VersionName(kOldestKubernetesVersion) + ".." + VersionName(kNewestKubernetesVersion);
}

Result<KubernetesVersion> ParseKubernetesVersion(std::string_view text, std::string_view what) {
  const std::string prefix = std::string(what) + ": ";
  std::string_view s = text;
  if (s.starts_with('v')) s.remove_prefix(1);
  int major = 0;
  int minor = 0;
  int patch = 0;
  bool ok =
      !s.empty() && std::isdigit(static_cast<unsigned char>(s.front())) && TakeNumber(s, major) && s.starts_with('.');
  if (ok) {
    s.remove_prefix(1);
    ok = !s.empty() && std::isdigit(static_cast<unsigned char>(s.front())) && TakeNumber(s, minor);
  }
  if (ok && s.starts_with('.')) {
    s.remove_prefix(1);
    ok = !s.empty() && std::isdigit(static_cast<unsigned char>(s.front())) && TakeNumber(s, patch);
    // Semver pre-release / build metadata after the patch ("1.36.0-rc.1", "1.36.0+abc").
    if (ok && !s.empty() && (s.front() == '-' || s.front() == '+')) s = {};
  }
  if (!ok || !s.empty()) {
    return InvalidArgument(prefix + "'" + std::string(text) +
                           "' is not a Kubernetes version such as v1.36.0 (labels like stable-1.34 are not resolved; "
                           "give the version, " +
                           SupportedVersionRange() + ")");
  }
  if (major != 1 || minor < kOldestKubernetesVersion.minor || minor > kNewestKubernetesVersion.minor) {
    return InvalidArgument(prefix + "Kubernetes " + std::to_string(major) + "." + std::to_string(minor) +
                           " is not supported (supported: " + SupportedVersionRange() + ")");
  }
  return KubernetesVersion{minor};
}

std::span<const VersionChangeInfo> VersionChanges() { return kChanges; }

KubernetesVersion ChangedIn(VersionChange change) {
  for (const auto& c : kChanges) {
    if (c.change == change) return c.since;
  }
  return kOldestKubernetesVersion;  // unreachable: every VersionChange is in the table
}

bool HasChange(KubernetesVersion v, VersionChange change) { return v >= ChangedIn(change); }

Status CheckEncryptionAlgorithm(KeyType type, KubernetesVersion v) {
  if (type == KeyType::kEcP384 && !HasChange(v, VersionChange::kEcdsaP384)) {
    return InvalidArgument("ECDSA-P384 needs Kubernetes " + VersionName(ChangedIn(VersionChange::kEcdsaP384)) +
                           " or newer (the cluster is " + VersionName(v) + ")");
  }
  return OkStatus();
}

}  // namespace kubehsm::signer::pki
