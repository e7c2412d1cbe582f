// signer/pki/kubeconfig.h: reading kubeconfig files (`certs renew`, `sign-dir` completing the
// files kubeadm's generate-csr leaves) and replacing their credentials in place.
// Invariants: refusals are kInvalidArgument; when ReadKubeconfig accepts a file,
// UpdateKubeconfigCredentials accepts it too, and reading the result gives back exactly the new
// certificate, key and CA with the context, cluster, server, user and token unchanged and no
// conflicting file references; updating again with the same credentials changes nothing.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/fuzz_util.h"
#include "signer/pki/kubeconfig.h"

namespace {

namespace pki = kubehsm::signer::pki;

constexpr char kCert[] = "-----BEGIN CERTIFICATE-----\nMIIBfuzzcert\n-----END CERTIFICATE-----\n";
constexpr char kKey[] = "-----BEGIN PRIVATE KEY-----\nMIGHfuzzkey\n-----END PRIVATE KEY-----\n";
constexpr char kCa[] = "-----BEGIN CERTIFICATE-----\nMIIBfuzzca\n-----END CERTIFICATE-----\n";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = kubehsm::fuzz::AsText(data, size);
  auto creds = pki::ReadKubeconfig(text);
  if (!creds.ok()) {
    KH_FUZZ_CHECK(creds.status().code() == kubehsm::StatusCode::kInvalidArgument, creds.status().message());
    auto updated = pki::UpdateKubeconfigCredentials(text, kCert, kKey, kCa);
    KH_FUZZ_CHECK(!updated.ok(), "UpdateKubeconfigCredentials accepts what ReadKubeconfig refuses");
    return 0;
  }
  // Only the certificate, or all three (the two shapes the callers use).
  const bool all = size % 2 == 0;
  auto updated = all ? pki::UpdateKubeconfigCredentials(text, kCert, kKey, kCa)
                     : pki::UpdateKubeconfigCredentials(text, kCert);
  KH_FUZZ_CHECK(updated.ok(), "update refused a readable kubeconfig: " + updated.status().message());

  auto after = pki::ReadKubeconfig(*updated);
  KH_FUZZ_CHECK(after.ok(), "updated kubeconfig does not read back: " + after.status().message() + "\n" + *updated);
  KH_FUZZ_CHECK(after->client_cert_pem == kCert, "client certificate not replaced");
  KH_FUZZ_CHECK(after->client_cert_file.empty(), "conflicting client-certificate reference kept");
  if (all) {
    KH_FUZZ_CHECK(after->client_key_pem == kKey && after->client_key_file.empty(), "client key not replaced");
    KH_FUZZ_CHECK(after->ca_pem == kCa && after->ca_file.empty(), "CA not replaced");
  } else {
    KH_FUZZ_CHECK(after->client_key_pem == creds->client_key_pem && after->client_key_file == creds->client_key_file,
                  "client key changed although not given");
    KH_FUZZ_CHECK(after->ca_pem == creds->ca_pem && after->ca_file == creds->ca_file, "CA changed although not given");
  }
  KH_FUZZ_CHECK(after->current_context == creds->current_context && after->cluster_name == creds->cluster_name &&
                    after->server == creds->server && after->user_name == creds->user_name &&
                    after->token == creds->token,
                "update changed more than the credentials");

  auto twice = all ? pki::UpdateKubeconfigCredentials(*updated, kCert, kKey, kCa)
                   : pki::UpdateKubeconfigCredentials(*updated, kCert);
  KH_FUZZ_CHECK(twice.ok() && *twice == *updated, "updating with the same credentials is not a no-op");
  return 0;
}
