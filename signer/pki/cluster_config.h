// The cluster facts the PKI needs, read from kubeadm's own configuration file
// (InitConfiguration or JoinConfiguration, plus ClusterConfiguration; kubeadm.k8s.io/v1beta3 and
// v1beta4, multi-document YAML) with kubeadm's defaults where a field is absent.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/key_type.h"
#include "common/status.h"
#include "signer/pki/versions.h"

namespace kubehsm::signer::pki {

// Which node a kubeadm config file describes.
enum class NodeRole {
  kInit,              // InitConfiguration (or none): the first control-plane node
  kJoinControlPlane,  // JoinConfiguration with controlPlane: a further control-plane node
  kJoinWorker,        // JoinConfiguration without controlPlane: a worker, no control-plane certificates
};

struct ClusterConfig {
  NodeRole node_role = NodeRole::kInit;

  std::string node_name;               // nodeRegistration.name; default: lower-cased hostname
  // localAPIEndpoint.advertiseAddress (JoinConfiguration: controlPlane.localAPIEndpoint);
  // default: default-route interface IP
  std::string advertise_address;
  // The config left these out (or gave 0.0.0.0 / ::), so they are this host's: right on the node
  // itself, wrong on a signing box (sign-dir refuses such a config).
  bool node_name_from_host = false;
  bool advertise_address_from_host = false;
  int bind_port = 6443;                // localAPIEndpoint.bindPort (JoinConfiguration: controlPlane.localAPIEndpoint)
  std::string control_plane_endpoint;  // "" or "host[:port]" (IPv6 hosts bracketed)
  std::string service_subnet = "10.96.0.0/12";  // networking.serviceSubnet (may be comma-separated dual-stack)
  std::string dns_domain = "cluster.local";     // networking.dnsDomain
  std::string cluster_name = "kubernetes";      // clusterName
  std::vector<std::string> apiserver_cert_sans;  // apiServer.certSANs
  std::vector<std::string> etcd_server_cert_sans;  // etcd.local.serverCertSANs
  std::vector<std::string> etcd_peer_cert_sans;    // etcd.local.peerCertSANs
  bool external_etcd = false;                      // etcd.external present
  std::chrono::seconds cert_validity = std::chrono::hours(8760);     // certificateValidityPeriod (v1beta4)
  std::chrono::seconds ca_validity = std::chrono::hours(87600);      // caCertificateValidityPeriod (v1beta4)
  KeyType encryption_algorithm = KeyType::kRsa2048;                  // encryptionAlgorithm (v1beta4)
  std::string cert_dir = "/etc/kubernetes/pki";                      // certificatesDir
  // The operator's opt-in (--allow-public-suffix-wildcards, never read from the file) to accept a
  // certSANs wildcard over a public suffix ("*.com", "*.co.uk"); refused by default.
  bool allow_public_suffix_wildcards = false;
  // kubernetesVersion (minor only; default: the newest supported). Selects the profile
  // differences of signer/pki/versions.h.
  KubernetesVersion kubernetes_version = DefaultKubernetesVersion();
};

// Returns kubeadm's defaults (node name and advertise address detected from this host).
Result<ClusterConfig> DefaultClusterConfig();

// Parses kubeadm configuration YAML (one or more documents). Fields of kubeadm's schema that the
// PKI does not use are accepted and ignored; unknown fields, unknown kinds/apiVersions and invalid
// values are kInvalidArgument naming the field (e.g. "ClusterConfiguration.networking.dnsDomain").
Result<ClusterConfig> ParseKubeadmConfig(std::string_view yaml);

// Reads and parses a kubeadm configuration file. The second form passes the operator's opt-in for
// public-suffix wildcards in certSANs (see ValidateClusterConfig).
Result<ClusterConfig> LoadKubeadmConfig(const std::filesystem::path& file);
Result<ClusterConfig> LoadKubeadmConfig(const std::filesystem::path& file, bool allow_public_suffix_wildcards);

// OK unless `config` describes a worker node (a JoinConfiguration without controlPlane), for which
// control-plane certificates must not be made: then kInvalidArgument saying so.
Status RequireControlPlaneNode(const ClusterConfig& config);

// Checks the cross-field rules (addresses parse, CIDR valid, port range, validity > 0, ...). A
// certSANs wildcard whose remainder is a single label ("*.com", "*.local") or a common multi-label
// public suffix ("*.co.uk", "*.github.io"; a short built-in list) is refused unless
// config.allow_public_suffix_wildcards is set.
Status ValidateClusterConfig(const ClusterConfig& config);

// ---------------------------------------------------------------------------------------------
// Extensions (additive; the declarations above keep their meaning).

// Where kubeadm's host-dependent defaults come from. Each function is called only when the
// configuration leaves its field empty, so a config that sets both never probes the host.
struct HostDefaults {
  std::function<Result<std::string>()> node_name;          // default for nodeRegistration.name
  std::function<Result<std::string>()> advertise_address;  // default for localAPIEndpoint.advertiseAddress
};

// The real host: DetectNodeName() and DetectAdvertiseAddress().
HostDefaults SystemHostDefaults();

// As ParseKubeadmConfig(yaml), with host defaults taken from `host` (tests pass fixed values).
// Rules, all failing with kInvalidArgument and naming the field by its full path
// ("ClusterConfiguration.networking.dnsDomian"), or the YAML line/column for syntax errors:
//  - documents: kubeadm.k8s.io/v1beta3|v1beta4 InitConfiguration, JoinConfiguration and
//    ClusterConfiguration are read; v1beta4 ResetConfiguration/UpgradeConfiguration (mappings),
//    KubeletConfiguration (kubelet.config.k8s.io/*) and KubeProxyConfiguration
//    (kubeproxy.config.k8s.io/*) are accepted and ignored; any other apiVersion/kind, a missing
//    apiVersion/kind or a repeated kind fails;
//  - InitConfiguration and JoinConfiguration together fail (they describe different nodes). A
//    JoinConfiguration's nodeRegistration.name and controlPlane.localAPIEndpoint take the place of
//    InitConfiguration's (node_role kJoinControlPlane); without controlPlane it is a worker
//    (kJoinWorker, see RequireControlPlaneNode). A JoinConfiguration with controlPlane needs the
//    cluster's ClusterConfiguration in the same file, with a controlPlaneEndpoint (kubeadm adds no
//    control-plane node to a cluster without one), since the join document holds no cluster settings;
//  - every field of the kubeadm schema is accepted at its own nesting level and type-checked;
//    unknown fields, duplicate keys, and fields of the other schema version fail (e.g.
//    encryptionAlgorithm in v1beta3);
//  - values are validated as ValidateClusterConfig does; the feature gate PublicKeysECDSA, when
//    set, overrides encryptionAlgorithm (true: ECDSA-P256, false: RSA-2048);
//  - kubernetesVersion ("v1.36.0", "1.33.2") must be a version in 1.32..1.36 (labels such as
//    "stable-1.34" are refused); absent, the newest supported minor is used. ECDSA-P384 as
//    encryptionAlgorithm is refused below 1.34;
//  - input over 1 MiB, nesting deeper than 64 levels, or alias bombs are rejected.
// A host default that cannot be determined is returned as that function's error.
Result<ClusterConfig> ParseKubeadmConfig(std::string_view yaml, const HostDefaults& host);
// As above, with the operator's opt-in for public-suffix wildcards in certSANs.
Result<ClusterConfig> ParseKubeadmConfig(std::string_view yaml, const HostDefaults& host,
                                         bool allow_public_suffix_wildcards);

// The lower-cased, trimmed hostname (kubeadm's default node name). kFailedPrecondition if empty.
Result<std::string> DetectNodeName();

// kubeadm's default advertise address, IPv4 only: an address of the interface holding the first
// up default route in /proc/net/route, else the first up, non-loopback, non-link-local IPv4 of
// any interface. kFailedPrecondition when there is none (then set advertiseAddress explicitly).
Result<std::string> DetectAdvertiseAddress();

// The interface name of the first up (RTF_UP) IPv4 default route in a /proc/net/route text, or
// "" when there is none. Exposed for tests.
std::string DefaultRouteInterface(std::string_view proc_net_route);

// Parses a Go time.Duration string ("8760h", "8760h0m0s", "90m", "1h30m", "1.5h", "300ms", "0")
// into nanoseconds. nullopt on a syntax error, a missing unit, or int64 overflow.
std::optional<std::int64_t> ParseGoDuration(std::string_view text);

}  // namespace kubehsm::signer::pki
