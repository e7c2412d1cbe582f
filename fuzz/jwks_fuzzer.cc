// signer/jwt/jwks.h ParseJwks: a downloaded /openid/v1/jwks document (`sa verify --jwks`).
// Invariants: every accepted key is RSA or EC of a supported size with a non-empty kid (derived
// when absent); re-rendering the accepted keys with RenderJwks and parsing that again yields the
// same kids and equal public keys; refusals are kInvalidArgument.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "fuzz/fuzz_util.h"
#include "signer/jwt/jwks.h"

namespace {

std::string SpkiDer(const EVP_PKEY* key) {
  unsigned char* out = nullptr;
  const int n = i2d_PUBKEY(key, &out);
  if (n <= 0) return {};
  std::string der(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
  OPENSSL_free(out);
  return der;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = kubehsm::fuzz::AsText(data, size);
  auto keys = kubehsm::jwt::ParseJwks(text);
  if (!keys.ok()) {
    KH_FUZZ_CHECK(keys.status().code() == kubehsm::StatusCode::kInvalidArgument, keys.status().message());
    return 0;
  }
  KH_FUZZ_CHECK(!keys->empty(), "accepted an empty key set");
  std::vector<kubehsm::jwt::PublishedKey> published;
  for (const auto& k : *keys) {
    KH_FUZZ_CHECK(!k.kid.empty(), "key without a kid");
    KH_FUZZ_CHECK(k.public_key != nullptr, "key without a public key");
    const std::string der = SpkiDer(k.public_key.get());
    KH_FUZZ_CHECK(!der.empty(), "accepted key has no SPKI encoding");
    published.push_back({k.kid, der});
  }
  auto rendered = kubehsm::jwt::RenderJwks(published);
  KH_FUZZ_CHECK(rendered.ok(), "accepted keys do not render: " + rendered.status().message());
  auto again = kubehsm::jwt::ParseJwks(*rendered);
  KH_FUZZ_CHECK(again.ok(), "rendered JWKS does not parse: " + again.status().message());
  KH_FUZZ_CHECK(again->size() == keys->size(), "key count changed in a render/parse round trip");
  for (std::size_t i = 0; i < keys->size(); ++i) {
    KH_FUZZ_CHECK((*again)[i].kid == (*keys)[i].kid, "kid changed in a round trip");
    KH_FUZZ_CHECK((*again)[i].type == (*keys)[i].type, "key type changed in a round trip");
    KH_FUZZ_CHECK(EVP_PKEY_eq((*again)[i].public_key.get(), (*keys)[i].public_key.get()) == 1,
                  "public key changed in a round trip");
  }
  return 0;
}
