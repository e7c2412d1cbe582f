#include "signer/pki/profiles.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <utility>

namespace kubehsm::signer::pki {
namespace {

using enum ExtKeyUsage;

constexpr std::array<CaProfile, 3> kCas = {{
    {CaId::kCa, "ca", "ca", "kubernetes", "ca",
     "self-signed Kubernetes CA to provision identities for other Kubernetes components"},
    {CaId::kFrontProxyCa, "front-proxy-ca", "front-proxy-ca", "front-proxy-ca", "front-proxy-ca",
     "self-signed CA to provision identities for front proxy"},
    {CaId::kEtcdCa, "etcd-ca", "etcd/ca", "etcd-ca", "etcd-ca", "self-signed CA to provision identities for etcd"},
}};

const std::vector<LeafProfile>& Leaves() {
  // Function-local constant (a vector member prevents constexpr); never mutated.
  static const std::vector<LeafProfile> kLeaves = {
      {"apiserver", "apiserver", "certificate for serving the Kubernetes API", CaId::kCa, "kube-apiserver", {},
       {kServerAuth}, SanRule::kApiServer, false},
      {"apiserver-kubelet-client", "apiserver-kubelet-client", "certificate for the API server to connect to kubelet",
       CaId::kCa, "kube-apiserver-kubelet-client", {"kubeadm:cluster-admins"}, {kClientAuth}, SanRule::kNone, false},
      {"front-proxy-client", "front-proxy-client", "certificate for the front proxy client", CaId::kFrontProxyCa,
       "front-proxy-client", {}, {kClientAuth}, SanRule::kNone, false},
      {"etcd-server", "etcd/server", "certificate for serving etcd", CaId::kEtcdCa, "", {},
       {kServerAuth, kClientAuth}, SanRule::kEtcdServer, true},
      {"etcd-peer", "etcd/peer", "certificate for etcd nodes to communicate with each other", CaId::kEtcdCa, "", {},
       {kServerAuth, kClientAuth}, SanRule::kEtcdPeer, true},
      {"etcd-healthcheck-client", "etcd/healthcheck-client", "certificate for liveness probes to healthcheck etcd",
       CaId::kEtcdCa, "kube-etcd-healthcheck-client", {}, {kClientAuth}, SanRule::kNone, true},
      {"apiserver-etcd-client", "apiserver-etcd-client", "certificate the apiserver uses to access etcd",
       CaId::kEtcdCa, "kube-apiserver-etcd-client", {}, {kClientAuth}, SanRule::kNone, true},
  };
  return kLeaves;
}

const std::vector<KubeconfigProfile>& Kubeconfigs() {
  static const std::vector<KubeconfigProfile> kKubeconfigs = {
      {"admin.conf", "kubernetes-admin", {"kubeadm:cluster-admins"}, false, false, true,
       "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself"},
      {"super-admin.conf", "kubernetes-super-admin", {"system:masters"}, false, true, true,
       "certificate embedded in the kubeconfig file for the super-admin"},
      {"kubelet.conf", "system:node:", {"system:nodes"}, false, true, false,
       "certificate embedded in the kubeconfig file for the kubelet to use"},
      {"controller-manager.conf", "system:kube-controller-manager", {}, true, false, true,
       "certificate embedded in the kubeconfig file for the controller manager to use"},
      {"scheduler.conf", "system:kube-scheduler", {}, true, false, true,
       "certificate embedded in the kubeconfig file for the scheduler manager to use"},
  };
  return kKubeconfigs;
}

bool IsLabel(std::string_view l) {
  if (l.empty() || l.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(l.front()) || !alnum(l.back())) return false;
  return std::all_of(l.begin(), l.end(), [&](char c) { return alnum(c) || c == '-'; });
}

}  // namespace

std::span<const CaProfile> CaProfiles() { return kCas; }

const CaProfile& GetCaProfile(CaId id) {
  for (const auto& ca : kCas) {
    if (ca.id == id) return ca;
  }
  return kCas[0];  // unreachable: every CaId is in the table
}

std::span<const LeafProfile> LeafProfiles() { return Leaves(); }
std::span<const KubeconfigProfile> KubeconfigProfiles() { return Kubeconfigs(); }

const LeafProfile* FindLeafProfile(std::string_view name) {
  for (const auto& l : Leaves()) {
    if (l.name == name || l.file_base == name) return &l;
  }
  return nullptr;
}

const KubeconfigProfile* FindKubeconfigProfile(std::string_view file_name) {
  for (const auto& k : Kubeconfigs()) {
    if (k.file_name == file_name) return &k;
  }
  return nullptr;
}

std::string ParseIp(std::string_view text) {
  const std::string s(text);
  unsigned char buf[16];
  if (inet_pton(AF_INET, s.c_str(), buf) == 1) return std::string(reinterpret_cast<char*>(buf), 4);
  if (inet_pton(AF_INET6, s.c_str(), buf) == 1) {
    // Go writes IPv4-mapped IPv6 addresses as 4-byte IPv4 (net.IP.To4).
    static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(kMapped, kMapped + 12, buf)) return std::string(reinterpret_cast<char*>(buf + 12), 4);
    return std::string(reinterpret_cast<char*>(buf), 16);
  }
  return "";
}

std::string FormatIp(std::string_view bytes) {
  char out[INET6_ADDRSTRLEN] = {};
  if (bytes.size() == 4) {
    inet_ntop(AF_INET, bytes.data(), out, sizeof(out));
  } else if (bytes.size() == 16) {
    inet_ntop(AF_INET6, bytes.data(), out, sizeof(out));
  }
  return out;
}

bool IsDnsSubdomain(std::string_view name) {
  if (name.starts_with("*.")) name.remove_prefix(2);
  if (name.empty() || name.size() > 253) return false;
  size_t start = 0;
  while (true) {
    const size_t dot = name.find('.', start);
    if (!IsLabel(name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start))) {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

void AddUserSan(SanSet& set, std::string_view entry, std::vector<std::string>* warnings) {
  const std::string ip = ParseIp(entry);
  if (!ip.empty()) {
    set.ips.push_back(FormatIp(ip));
  } else if (IsDnsSubdomain(entry)) {
    set.dns.emplace_back(entry);
  } else if (warnings != nullptr) {
    warnings->push_back("[certificates] WARNING: '" + std::string(entry) +
                        "' was not added to the SANs: neither an IP address nor an RFC 1123 subdomain");
  }
}

void Normalize(SanSet& set) {
  std::sort(set.dns.begin(), set.dns.end());
  set.dns.erase(std::unique(set.dns.begin(), set.dns.end()), set.dns.end());
  std::vector<std::string> ips;
  for (auto& ip : set.ips) {
    if (std::find(ips.begin(), ips.end(), ip) == ips.end()) ips.push_back(std::move(ip));
  }
  set.ips = std::move(ips);
}

Result<std::string> FirstServiceIp(std::string_view service_subnet) {
  std::string_view first = service_subnet.substr(0, service_subnet.find(','));
  while (!first.empty() && first.front() == ' ') first.remove_prefix(1);
  while (!first.empty() && first.back() == ' ') first.remove_suffix(1);
  const size_t slash = first.find('/');
  auto bad = [&] { return InvalidArgument("invalid service subnet '" + std::string(service_subnet) + "'"); };
  if (slash == std::string_view::npos) return bad();
  std::string addr = ParseIp(first.substr(0, slash));
  int prefix = -1;
  const std::string_view p = first.substr(slash + 1);
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
  if (addr.empty() || ec != std::errc() || ptr != p.data() + p.size() || prefix < 0 ||
      prefix > static_cast<int>(addr.size() * 8)) {
    return bad();
  }
  // Network address: clear the host bits, then add one with carry.
  for (size_t i = 0; i < addr.size(); ++i) {
    const int bits_in_byte = std::clamp(prefix - static_cast<int>(i) * 8, 0, 8);
    const auto mask = static_cast<unsigned char>(0xff00 >> bits_in_byte);
    addr[i] = static_cast<char>(static_cast<unsigned char>(addr[i]) & mask);
  }
  for (size_t i = addr.size(); i-- > 0;) {
    auto b = static_cast<unsigned char>(addr[i]);
    addr[i] = static_cast<char>(b + 1);
    if (b != 0xff) break;
  }
  return FormatIp(addr);
}

Result<std::pair<std::string, int>> SplitHostPort(std::string_view endpoint) {
  std::string host;
  std::string_view rest;
  if (endpoint.starts_with('[')) {
    const size_t close = endpoint.find(']');
    if (close == std::string_view::npos) return InvalidArgument("invalid endpoint '" + std::string(endpoint) + "'");
    host = endpoint.substr(1, close - 1);
    rest = endpoint.substr(close + 1);
  } else {
    const size_t colon = endpoint.find(':');
    if (colon != std::string_view::npos && endpoint.find(':', colon + 1) != std::string_view::npos) {
      host = endpoint;  // bare IPv6 address without a port
    } else {
      host = endpoint.substr(0, colon);
      rest = colon == std::string_view::npos ? std::string_view() : endpoint.substr(colon);
    }
  }
  int port = 0;
  if (!rest.empty()) {
    if (rest.front() != ':') return InvalidArgument("invalid endpoint '" + std::string(endpoint) + "'");
    rest.remove_prefix(1);
    auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), port);
    if (ec != std::errc() || ptr != rest.data() + rest.size() || port <= 0 || port > 65535) {
      return InvalidArgument("invalid port in endpoint '" + std::string(endpoint) + "'");
    }
  }
  if (host.empty()) return InvalidArgument("invalid endpoint '" + std::string(endpoint) + "'");
  return std::make_pair(host, port);
}

Result<SanSet> ComputeSans(SanRule rule, const ClusterConfig& config, std::vector<std::string>* warnings) {
  SanSet set;
  switch (rule) {
    case SanRule::kNone:
      return set;
    case SanRule::kApiServer: {
      // From 1.34 an empty node name / DNS domain adds no SAN (signer/pki/versions.h).
      const bool omit_empty = HasChange(config.kubernetes_version, VersionChange::kOmitEmptySanNames);
      set.dns = {"kubernetes", "kubernetes.default", "kubernetes.default.svc"};
      if (!omit_empty || !config.node_name.empty()) set.dns.push_back(config.node_name);
      if (!omit_empty || !config.dns_domain.empty()) set.dns.push_back("kubernetes.default.svc." + config.dns_domain);
      KH_ASSIGN_OR_RETURN(std::string svc, FirstServiceIp(config.service_subnet));
      set.ips.push_back(svc);
      const std::string adv = ParseIp(config.advertise_address);
      if (adv.empty()) return InvalidArgument("invalid advertise address '" + config.advertise_address + "'");
      set.ips.push_back(FormatIp(adv));
      if (!config.control_plane_endpoint.empty()) {
        KH_ASSIGN_OR_RETURN(auto hp, SplitHostPort(config.control_plane_endpoint));
        const std::string cpe = ParseIp(hp.first);
        if (cpe.empty()) {
          set.dns.push_back(hp.first);
        } else {
          set.ips.push_back(FormatIp(cpe));
        }
      }
      for (const auto& s : config.apiserver_cert_sans) AddUserSan(set, s, warnings);
      break;
    }
    case SanRule::kEtcdServer:
    case SanRule::kEtcdPeer: {
      set.dns = {"localhost"};
      if (!HasChange(config.kubernetes_version, VersionChange::kOmitEmptySanNames) || !config.node_name.empty()) {
        set.dns.push_back(config.node_name);
      }
      const std::string adv = ParseIp(config.advertise_address);
      if (adv.empty()) return InvalidArgument("invalid advertise address '" + config.advertise_address + "'");
      set.ips = {FormatIp(adv), "127.0.0.1", "::1"};
      const auto& extra = rule == SanRule::kEtcdServer ? config.etcd_server_cert_sans : config.etcd_peer_cert_sans;
      for (const auto& s : extra) AddUserSan(set, s, warnings);
      break;
    }
  }
  Normalize(set);
  return set;
}

CertSpec CaSpec(const CaProfile& ca) { return CaSpec(ca, DefaultKubernetesVersion()); }

CertSpec CaSpec(const CaProfile& ca, KubernetesVersion v) {
  CertSpec spec;
  spec.common_name = ca.common_name;
  spec.is_ca = true;
  if (!ca.common_name.empty() || !HasChange(v, VersionChange::kCaDnsSanOnlyFromNonEmptyCn)) {
    spec.sans.dns = {std::string(ca.common_name)};
  }
  return spec;
}

std::vector<std::string> LeafOrganizations(const LeafProfile& leaf, KubernetesVersion v) {
  if (leaf.name == "apiserver-kubelet-client" &&
      HasChange(v, VersionChange::kApiserverKubeletClientWithoutOrganization)) {
    return {};
  }
  return {leaf.organizations.begin(), leaf.organizations.end()};
}

Result<CertSpec> LeafSpec(const LeafProfile& leaf, const ClusterConfig& config, std::vector<std::string>* warnings) {
  CertSpec spec;
  spec.common_name = leaf.common_name.empty() ? config.node_name : std::string(leaf.common_name);
  if (spec.common_name.empty()) return InvalidArgument("the node name is empty");
  spec.organizations = LeafOrganizations(leaf, config.kubernetes_version);
  spec.ext_key_usages = leaf.ext_key_usages;
  KH_ASSIGN_OR_RETURN(spec.sans, ComputeSans(leaf.sans, config, warnings));
  return spec;
}

CertSpec KubeconfigClientSpec(const KubeconfigProfile& kc, const ClusterConfig& config) {
  CertSpec spec;
  spec.common_name = kc.common_name;
  if (spec.common_name == "system:node:") spec.common_name += config.node_name;
  for (auto o : kc.organizations) spec.organizations.emplace_back(o);
  spec.ext_key_usages = {kClientAuth};
  return spec;
}

namespace {
std::string UrlHost(const std::string& host) {
  return ParseIp(host).size() == 16 ? "[" + host + "]" : host;
}
}  // namespace

Result<std::string> ControlPlaneUrl(const ClusterConfig& config) {
  if (config.control_plane_endpoint.empty()) return LocalApiUrl(config);
  KH_ASSIGN_OR_RETURN(auto hp, SplitHostPort(config.control_plane_endpoint));
  const int port = hp.second != 0 ? hp.second : config.bind_port;
  return "https://" + UrlHost(hp.first) + ":" + std::to_string(port);
}

std::string LocalApiUrl(const ClusterConfig& config) {
  return "https://" + UrlHost(config.advertise_address) + ":" + std::to_string(config.bind_port);
}

Result<std::string> KubeconfigServerUrl(const KubeconfigProfile& kc, const ClusterConfig& config) {
  const bool kubelet_local =
      kc.file_name == "kubelet.conf" && HasChange(config.kubernetes_version, VersionChange::kKubeletConfLocalEndpoint);
  if (kc.local_endpoint || kubelet_local) return LocalApiUrl(config);
  return ControlPlaneUrl(config);
}

}  // namespace kubehsm::signer::pki
