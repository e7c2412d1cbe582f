// signer/pki/cluster_config.h ParseKubeadmConfig: kubeadm's InitConfiguration/ClusterConfiguration
// YAML (`init --config`), with fixed host defaults so the host is never probed.
// Invariants: refusals are kInvalidArgument (the host defaults never fail); an accepted config
// passes ValidateClusterConfig, has positive validities, a port in range, a node name and an
// advertise address; parsing is deterministic. Also fuzzes
// ParseGoDuration on the same bytes: a parsed duration printed as "<n>ns" parses back to n.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_util.h"
#include "signer/pki/cluster_config.h"

namespace {

namespace pki = kubehsm::signer::pki;

constexpr char kHostNode[] = "fuzz-node";
constexpr char kHostAddress[] = "192.0.2.10";

pki::HostDefaults FixedHost() {
  pki::HostDefaults host;
  host.node_name = [] { return kubehsm::Result<std::string>(std::string(kHostNode)); };
  host.advertise_address = [] { return kubehsm::Result<std::string>(std::string(kHostAddress)); };
  return host;
}

bool SameConfig(const pki::ClusterConfig& a, const pki::ClusterConfig& b) {
  return a.node_name == b.node_name && a.advertise_address == b.advertise_address && a.bind_port == b.bind_port &&
         a.control_plane_endpoint == b.control_plane_endpoint && a.service_subnet == b.service_subnet &&
         a.dns_domain == b.dns_domain && a.cluster_name == b.cluster_name &&
         a.apiserver_cert_sans == b.apiserver_cert_sans && a.etcd_server_cert_sans == b.etcd_server_cert_sans &&
         a.etcd_peer_cert_sans == b.etcd_peer_cert_sans && a.external_etcd == b.external_etcd &&
         a.cert_validity == b.cert_validity && a.ca_validity == b.ca_validity &&
         a.encryption_algorithm == b.encryption_algorithm && a.cert_dir == b.cert_dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = kubehsm::fuzz::AsText(data, size);

  if (size <= 64) {
    if (auto ns = pki::ParseGoDuration(text)) {
      const auto back = pki::ParseGoDuration(std::to_string(*ns) + "ns");
      KH_FUZZ_CHECK(back && *back == *ns, "duration " + std::to_string(*ns) + "ns does not round-trip");
    }
  }

  static const pki::HostDefaults host = FixedHost();
  auto config = pki::ParseKubeadmConfig(text, host);
  if (!config.ok()) {
    KH_FUZZ_CHECK(config.status().code() == kubehsm::StatusCode::kInvalidArgument, config.status().message());
    return 0;
  }
  const kubehsm::Status valid = pki::ValidateClusterConfig(*config);
  KH_FUZZ_CHECK(valid.ok(), "accepted config fails ValidateClusterConfig: " + valid.message());
  KH_FUZZ_CHECK(config->cert_validity.count() > 0 && config->ca_validity.count() > 0, "non-positive validity");
  KH_FUZZ_CHECK(config->bind_port >= 1 && config->bind_port <= 65535, "bind port out of range");
  KH_FUZZ_CHECK(!config->node_name.empty() && !config->advertise_address.empty(), "missing host field");
  auto again = pki::ParseKubeadmConfig(text, host);
  KH_FUZZ_CHECK(again.ok() && SameConfig(*config, *again), "parsing is not deterministic");
  return 0;
}
