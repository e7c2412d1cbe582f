#include "signer/public_key_check.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>

#include <cstring>

#include "common/openssl_error.h"
#include "common/ssl_ptr.h"

namespace kubehsm::signer {
namespace {

constexpr unsigned long kMaxRsaPublicExponent = 0x7FFFFFFFul;  // Go's limit (an int on 32-bit platforms)

std::optional<std::string> RsaProblem(const EVP_PKEY* key) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &raw) != 1 || raw == nullptr) {
    DrainOpenSslErrors();
    return "RSA key without a readable public exponent";
  }
  BigNumPtr e(raw);
  const std::string rule = " (it must be odd and at least " + std::to_string(kMinRsaPublicExponent) + ")";
  if (BN_num_bits(e.get()) > 31) return std::string("RSA public exponent above 2^31-1 is not allowed") + rule;
  const unsigned long value = BN_get_word(e.get());
  if (value > kMaxRsaPublicExponent) return std::string("RSA public exponent above 2^31-1 is not allowed") + rule;
  if (value < kMinRsaPublicExponent || value % 2 == 0) {
    return "RSA public exponent " + std::to_string(value) + " is not allowed" + rule;
  }
  return std::nullopt;
}

std::optional<std::string> EcProblem(const EVP_PKEY* key) {
  // OpenSSL reports how the parameters were encoded: "named_curve" or "explicit". An explicit
  // P-256 still gets a group name (OpenSSL matches the parameters), so the encoding is what counts.
  char encoding[32] = {};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_EC_ENCODING, encoding, sizeof(encoding), &len) != 1) {
    DrainOpenSslErrors();
    return "EC key whose parameter encoding cannot be read (only named curves, RFC 5480)";
  }
  if (std::strcmp(encoding, OSSL_PKEY_EC_ENCODING_GROUP) != 0) {
    return "EC key with explicit curve parameters (only named curves are allowed, RFC 5480 §2.1.1)";
  }
  char group[80] = {};
  if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) != 1) {
    DrainOpenSslErrors();
    return "EC key without a named curve (only named curves are allowed, RFC 5480 §2.1.1)";
  }
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, const_cast<EVP_PKEY*>(key), nullptr));
  if (!ctx || EVP_PKEY_public_check(ctx.get()) != 1) {
    DrainOpenSslErrors();
    return "EC public key is not a valid point of curve " + std::string(group);
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> PublicKeyProblem(const EVP_PKEY* key) {
  if (key == nullptr) return "no public key";
  if (EVP_PKEY_is_a(key, "RSA")) return RsaProblem(key);
  if (EVP_PKEY_is_a(key, "EC")) return EcProblem(key);
  return std::nullopt;
}

Status CheckPublicKey(const EVP_PKEY* key) {
  if (auto problem = PublicKeyProblem(key)) return InvalidArgument("weak key: " + *problem);
  return OkStatus();
}

}  // namespace kubehsm::signer
