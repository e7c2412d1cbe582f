// The ExternalJWTSigner Sign request path of `kubehsm serve`, called directly without a socket.
// The gRPC handler (SignerService::Sign in service/server.cc, internal to that file) passes
// SignJWTRequest.claims to KeyManager::Sign and logs the outcome; this target does the same over a
// MemoryKeyStore-backed SignerBackend with one active EC P-256 service-account key.
// Invariants: a refused request is kInvalidArgument and never takes the backend down (a hostile
// client must not be able to stop the signer); an accepted one has exactly the header
// {"alg":"ES256","kid":<active kid>,"typ":"JWT"}, claims that are strict base64url of a JSON
// object, and a signature plain OpenSSL verifies over `header.claims`; each call logs exactly one
// line whatever the claims contain.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include "common/base64.h"
#include "fuzz/fuzz_util.h"
#include "service/key_manager.h"
#include "service/log.h"
#include "service/metrics.h"
#include "signer/jwt/jws.h"
#include "signer/jwt/sa_keys.h"
#include "signer/memory_key_store.h"

namespace {

namespace service = kubehsm::service;

class MemoryBackend final : public service::SignerBackend {
 public:
  explicit MemoryBackend(kubehsm::signer::MemoryKeyStore* store) : store_(store) {}
  kubehsm::signer::KeyStore& store() override { return *store_; }
  kubehsm::Status CheckHealth() override { return kubehsm::OkStatus(); }

 private:
  kubehsm::signer::MemoryKeyStore* store_;  // borrowed; lives for the process
};

struct Fixture {
  kubehsm::signer::MemoryKeyStore store;
  std::ostringstream log_stream;
  service::Logger logger{log_stream, /*debug=*/true};
  service::Metrics metrics;
  std::unique_ptr<service::KeyManager> keys;
  std::string kid;
  kubehsm::EvpPkeyPtr public_key;

  Fixture() {
    auto key = kubehsm::jwt::EnsureActiveSaKey(store, kubehsm::KeyType::kEcP256, 1767225600);
    if (!key.ok()) kubehsm::fuzz::InvariantFailed("EnsureActiveSaKey", key.status().message(), __FILE__, __LINE__);
    public_key.reset(EVP_PKEY_dup(key->public_key()));
    service::KeyManagerOptions options;
    options.poll_interval = std::chrono::hours(24);  // no background reloads while fuzzing
    options.session_wait = std::chrono::milliseconds(100);
    auto started = service::KeyManager::Start(
        [this]() -> kubehsm::Result<std::unique_ptr<service::SignerBackend>> {
          return std::unique_ptr<service::SignerBackend>(new MemoryBackend(&store));
        },
        options, logger, metrics);
    if (!started.ok()) kubehsm::fuzz::InvariantFailed("KeyManager::Start", started.status().message(), __FILE__, __LINE__);
    keys = std::move(*started);
    kid = keys->Keys()->keys.at(0).kid;
  }
};

Fixture& F() {
  static Fixture* f = new Fixture;  // lives for the process (the manager owns a thread)
  return *f;
}

// ES256 over `input` with plain OpenSSL: raw r||s converted to DER, EVP_DigestVerify with SHA-256.
bool OpenSslVerifies(std::string_view input, const std::string& raw_sig) {
  if (raw_sig.size() != 64) return false;
  const auto* raw = reinterpret_cast<const unsigned char*>(raw_sig.data());
  kubehsm::EcdsaSigPtr sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(raw, 32, nullptr);
  BIGNUM* s = BN_bin2bn(raw + 32, 32, nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) return false;
  unsigned char* der = nullptr;
  const int n = i2d_ECDSA_SIG(sig.get(), &der);
  if (n <= 0) return false;
  kubehsm::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  const bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, F().public_key.get()) == 1 &&
                  EVP_DigestVerify(ctx.get(), der, static_cast<std::size_t>(n),
                                   reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  OPENSSL_free(der);
  return ok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Fixture& f = F();
  const std::string claims(kubehsm::fuzz::AsText(data, size));
  f.log_stream.str("");

  // What SignerService::Sign does with request->claims().
  auto signed_parts = f.keys->Sign(claims);
  if (signed_parts.ok()) {
    f.logger.Log(service::LogLevel::kDebug, "signed", {{"api", "v1"}, {"kid", signed_parts->kid}, {"claims", claims}});
  } else {
    f.logger.Log(service::LogLevel::kWarn, "rpc_failed",
                 {{"api", "v1"}, {"method", "Sign"}, {"error", signed_parts.status().message()}});
  }
  const std::string line = f.log_stream.str();
  KH_FUZZ_CHECK(!line.empty() && line.find('\n') == line.size() - 1, "one call did not log exactly one line: " + line);
  KH_FUZZ_CHECK(f.keys->backend_up(), "a request took the backend down");

  if (!signed_parts.ok()) {
    KH_FUZZ_CHECK(signed_parts.status().code() == kubehsm::StatusCode::kInvalidArgument,
                  "refused with " + signed_parts.status().message());
    return 0;
  }
  KH_FUZZ_CHECK(signed_parts->kid == f.kid, "signed with kid " + signed_parts->kid);
  auto header = kubehsm::Base64UrlDecode(signed_parts->header);
  KH_FUZZ_CHECK(header.ok() && *header == kubehsm::jwt::JwsHeaderJson(kubehsm::jwt::JwsAlgorithm::kEs256, f.kid),
                "unexpected header");
  auto payload = kubehsm::Base64UrlDecode(claims);
  KH_FUZZ_CHECK(payload.ok(), "accepted claims that are not strict base64url");
  const auto json = nlohmann::json::parse(*payload, nullptr, /*allow_exceptions=*/false);
  KH_FUZZ_CHECK(!json.is_discarded() && json.is_object(), "accepted claims that are not a JSON object");
  auto sig = kubehsm::Base64UrlDecode(signed_parts->signature);
  KH_FUZZ_CHECK(sig.ok(), "signature is not base64url");
  KH_FUZZ_CHECK(OpenSslVerifies(signed_parts->header + "." + claims, *sig), "signature does not verify");
  return 0;
}
