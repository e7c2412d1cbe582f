// The cluster facts the PKI needs, read from kubeadm's own configuration file
// (InitConfiguration + ClusterConfiguration, kubeadm.k8s.io/v1beta3 and v1beta4, multi-document
// YAML) with kubeadm's defaults where a field is absent.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/key_type.h"
#include "common/status.h"

namespace kubehsm::signer::pki {

struct ClusterConfig {
  std::string node_name;               // nodeRegistration.name; default: lower-cased hostname
  std::string advertise_address;       // localAPIEndpoint.advertiseAddress; default: default-route interface IP
  int bind_port = 6443;                // localAPIEndpoint.bindPort
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
};

// Returns kubeadm's defaults (node name and advertise address detected from this host).
Result<ClusterConfig> DefaultClusterConfig();

// Parses kubeadm configuration YAML (one or more documents). Fields of kubeadm's schema that the
// PKI does not use are accepted and ignored; unknown fields, unknown kinds/apiVersions and invalid
// values are kInvalidArgument naming the field (e.g. "ClusterConfiguration.networking.dnsDomain").
Result<ClusterConfig> ParseKubeadmConfig(std::string_view yaml);

// Reads and parses a kubeadm configuration file.
Result<ClusterConfig> LoadKubeadmConfig(const std::filesystem::path& file);

// Checks the cross-field rules (addresses parse, CIDR valid, port range, validity > 0, ...).
Status ValidateClusterConfig(const ClusterConfig& config);

}  // namespace kubehsm::signer::pki
