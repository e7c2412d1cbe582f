// kubeadm's certificate profiles: the three CAs, every leaf certificate and the five kubeconfig
// client certificates, with the SAN computation of kubeadm 1.31+ (spec kubeadm-pki.md §1, §2, §4).
// Pure data and computation: no keys, no files.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "signer/pki/cluster_config.h"

namespace kubehsm::signer::pki {

// The three cluster CAs.
enum class CaId { kCa, kEtcdCa, kFrontProxyCa };

// A CA of kubeadm's PKI (spec §2).
struct CaProfile {
  CaId id;
  std::string_view name;         // name in kubeadm's UX and check-expiration: "ca", "etcd-ca", "front-proxy-ca"
  std::string_view file_base;    // path under the cert dir without extension: "ca", "etcd/ca", "front-proxy-ca"
  std::string_view common_name;  // "kubernetes", "etcd-ca", "front-proxy-ca"
  // Label of the CA's key pair in the token. kubehsm's choice: the same as `name` ("ca", "etcd-ca",
  // "front-proxy-ca"), so `kubehsm keys list` reads like kubeadm's check-expiration.
  std::string_view key_label;
  std::string_view long_name;  // "certificate authority" wording for messages
};

enum class ExtKeyUsage { kServerAuth, kClientAuth };

// Which SAN rule of spec §1.1/§1.2 a leaf follows.
enum class SanRule { kNone, kApiServer, kEtcdServer, kEtcdPeer };

// A leaf certificate of kubeadm's PKI (spec §1).
struct LeafProfile {
  std::string_view name;         // internal name for check-expiration/renew: "etcd-server"
  std::string_view file_base;    // "etcd/server"
  std::string_view long_name;    // kubeadm's long name: "certificate for serving the Kubernetes API"
  CaId ca;
  std::string_view common_name;  // empty: the node name
  std::vector<std::string_view> organizations;
  std::vector<ExtKeyUsage> ext_key_usages;  // in Go's order
  SanRule sans;
  bool etcd;  // part of the local-etcd set (absent with external etcd)
};

// A kubeconfig file and its client certificate (spec §4). All are signed by `ca`.
struct KubeconfigProfile {
  std::string_view file_name;    // "admin.conf"
  std::string_view common_name;  // "system:node:" is completed with the node name
  std::vector<std::string_view> organizations;
  bool local_endpoint;  // controller-manager/scheduler talk to the local API server
  bool init_only;       // super-admin.conf and kubelet.conf: written by init, not for other nodes
  bool renewable;       // kubelet.conf is never renewed and not listed by check-expiration
  std::string_view long_name;  // kubeadm's renew wording
};

// The CAs in kubeadm's order: ca, front-proxy-ca, etcd-ca.
std::span<const CaProfile> CaProfiles();
const CaProfile& GetCaProfile(CaId id);

// Every leaf in kubeadm's generation order: apiserver, apiserver-kubelet-client, front-proxy-client,
// etcd-server, etcd-peer, etcd-healthcheck-client, apiserver-etcd-client.
std::span<const LeafProfile> LeafProfiles();

// admin.conf, super-admin.conf, kubelet.conf, controller-manager.conf, scheduler.conf.
std::span<const KubeconfigProfile> KubeconfigProfiles();

// Looks a leaf up by internal name ("etcd-server") or file base ("etcd/server"); nullptr if unknown.
const LeafProfile* FindLeafProfile(std::string_view name);
const KubeconfigProfile* FindKubeconfigProfile(std::string_view file_name);

// Subject Alternative Names, in the order Go writes them: DNS names sorted and de-duplicated, IPs
// (textual, canonical) de-duplicated in first-seen order.
struct SanSet {
  std::vector<std::string> dns;
  std::vector<std::string> ips;
  bool operator==(const SanSet&) const = default;
};

// What a certificate says, independent of keys and validity.
struct CertSpec {
  std::string common_name;
  std::vector<std::string> organizations;  // all in one multi-valued RDN, before CN
  bool is_ca = false;
  std::vector<ExtKeyUsage> ext_key_usages;
  SanSet sans;
};

// Adds a DNS name / IP to `set` with kubeadm's normalisation (call Normalize at the end).
// Classification of a user-supplied SAN (spec §1.3): an IP if it parses as one, else a DNS name if
// it is an RFC 1123 subdomain or a wildcard subdomain, else it is dropped and a warning is appended
// to `warnings`.
void AddUserSan(SanSet& set, std::string_view entry, std::vector<std::string>* warnings);

// Sorts + de-duplicates DNS names, de-duplicates IPs keeping the first occurrence.
void Normalize(SanSet& set);

// Parses an IPv4/IPv6 address; returns its 4- or 16-byte form, or an empty string.
std::string ParseIp(std::string_view text);
// Formats 4 or 16 address bytes canonically ("10.96.0.1", "::1").
std::string FormatIp(std::string_view bytes);
// True for an RFC 1123 subdomain, optionally with a leading "*." label.
bool IsDnsSubdomain(std::string_view name);

// The first address of the first CIDR of `service_subnet` (network address + 1). kInvalidArgument
// naming the subnet if it does not parse.
Result<std::string> FirstServiceIp(std::string_view service_subnet);

// Splits "host[:port]" / "[v6]:port" into host and port (0 when absent).
Result<std::pair<std::string, int>> SplitHostPort(std::string_view endpoint);

// The SANs of a leaf per spec §1.1 / §1.2; warnings collect dropped certSANs entries.
Result<SanSet> ComputeSans(SanRule rule, const ClusterConfig& config, std::vector<std::string>* warnings);

// The subject O of `leaf` at Kubernetes version `v` (apiserver-kubelet-client loses
// kubeadm:cluster-admins in 1.36; see signer/pki/versions.h).
std::vector<std::string> LeafOrganizations(const LeafProfile& leaf, KubernetesVersion v);

// The full spec of a CA / leaf / kubeconfig client certificate under `config`. CaSpec without a
// version is the newest supported version's (the CA profile differs only for an empty CN).
CertSpec CaSpec(const CaProfile& ca);
CertSpec CaSpec(const CaProfile& ca, KubernetesVersion v);
Result<CertSpec> LeafSpec(const LeafProfile& leaf, const ClusterConfig& config, std::vector<std::string>* warnings);
CertSpec KubeconfigClientSpec(const KubeconfigProfile& kc, const ClusterConfig& config);

// The API server URLs of spec §4: the control-plane endpoint (controlPlaneEndpoint or advertise
// address, bindPort when no port is given) and the local endpoint. IPv6 hosts are bracketed.
Result<std::string> ControlPlaneUrl(const ClusterConfig& config);
std::string LocalApiUrl(const ClusterConfig& config);

// The `server` of kubeconfig `kc` under `config`: the local endpoint for controller-manager and
// scheduler, and (from 1.33, see signer/pki/versions.h) for kubelet.conf; the control-plane
// endpoint otherwise. Fails as ControlPlaneUrl does.
Result<std::string> KubeconfigServerUrl(const KubeconfigProfile& kc, const ClusterConfig& config);

}  // namespace kubehsm::signer::pki
