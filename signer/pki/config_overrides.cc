#include "signer/pki/config_overrides.h"

#include <utility>

#include "common/file_util.h"

namespace kubehsm::signer::pki {

Result<ClusterConfig> ResolveClusterConfig(const std::filesystem::path& config_file, const ConfigOverrides& o) {
  std::string yaml;
  if (!config_file.empty()) {
    Result<std::string> text = ReadFileBounded(config_file, 1 << 20);
    if (!text.ok()) return text.status().WithContext("--config");
    yaml = std::move(text).value();
  }
  // Flags stand in for the host probes, so a machine without a default route works with
  // --advertise-address.
  HostDefaults host = SystemHostDefaults();
  if (o.node_name) host.node_name = [&]() -> Result<std::string> { return *o.node_name; };
  if (o.advertise_address) host.advertise_address = [&]() -> Result<std::string> { return *o.advertise_address; };
  Result<ClusterConfig> parsed = ParseKubeadmConfig(yaml, host);
  if (!parsed.ok()) return config_file.empty() ? parsed.status() : parsed.status().WithContext(config_file.string());
  ClusterConfig c = std::move(parsed).value();
  if (o.node_name) c.node_name = *o.node_name;
  if (o.advertise_address) c.advertise_address = *o.advertise_address;
  if (o.bind_port) c.bind_port = *o.bind_port;
  if (o.control_plane_endpoint) c.control_plane_endpoint = *o.control_plane_endpoint;
  if (o.service_cidr) c.service_subnet = *o.service_cidr;
  if (o.dns_domain) c.dns_domain = *o.dns_domain;
  for (const auto& s : o.apiserver_extra_sans) c.apiserver_cert_sans.push_back(s);
  if (o.kubernetes_version) {
    KH_ASSIGN_OR_RETURN(c.kubernetes_version, ParseKubernetesVersion(*o.kubernetes_version, "--kubernetes-version"));
  }
  if (o.encryption_algorithm) {
    std::optional<KeyType> t = ParseKeyType(*o.encryption_algorithm);
    if (!t || *t == KeyType::kEcP521) {
      return InvalidArgument("--encryption-algorithm: '" + *o.encryption_algorithm +
                             "' is not one of RSA-2048, RSA-3072, RSA-4096, ECDSA-P256, ECDSA-P384");
    }
    c.encryption_algorithm = *t;
  }
  KH_RETURN_IF_ERROR(ValidateClusterConfig(c));
  return c;
}

}  // namespace kubehsm::signer::pki
