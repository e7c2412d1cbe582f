// The kubeadm-like command-line flags of `kubehsm init` / `certs issue` applied over a kubeadm
// config file (or kubeadm's defaults), as one ClusterConfig.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "signer/pki/cluster_config.h"

namespace kubehsm::signer::pki {

// Each set field overrides the config file's value.
struct ConfigOverrides {
  std::optional<std::string> node_name;               // --node-name
  std::optional<std::string> advertise_address;       // --apiserver-advertise-address / --advertise-address
  std::optional<int> bind_port;                       // --apiserver-bind-port
  std::optional<std::string> control_plane_endpoint;  // --control-plane-endpoint
  std::optional<std::string> service_cidr;            // --service-cidr
  std::optional<std::string> dns_domain;              // --service-dns-domain
  std::vector<std::string> apiserver_extra_sans;      // --apiserver-cert-extra-sans (appended)
  std::optional<std::string> encryption_algorithm;    // --encryption-algorithm (RSA-2048 ... ECDSA-P384)
  std::optional<std::string> kubernetes_version;      // --kubernetes-version ("v1.36.0", "1.33")
};

// Loads `config_file` (empty: kubeadm's defaults), applies `overrides`, and validates the result.
// The host is probed for the node name / advertise address only when neither the file nor the
// overrides give one. kInvalidArgument naming the flag or field on bad values.
Result<ClusterConfig> ResolveClusterConfig(const std::filesystem::path& config_file, const ConfigOverrides& overrides);

}  // namespace kubehsm::signer::pki
