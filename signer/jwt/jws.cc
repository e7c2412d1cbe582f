#include "signer/jwt/jws.h"

#include <nlohmann/json.hpp>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>

#include "common/openssl_error.h"
#include "common/ssl_ptr.h"
#include "common/base64.h"

namespace kubehsm::jwt {

std::string_view JwsAlgorithmName(JwsAlgorithm alg) {
  switch (alg) {
    case JwsAlgorithm::kRs256: return "RS256";
    case JwsAlgorithm::kEs256: return "ES256";
    case JwsAlgorithm::kEs384: return "ES384";
    case JwsAlgorithm::kEs512: return "ES512";
  }
  return "";
}

std::optional<JwsAlgorithm> ParseJwsAlgorithm(std::string_view name) {
  for (JwsAlgorithm a : {JwsAlgorithm::kRs256, JwsAlgorithm::kEs256, JwsAlgorithm::kEs384, JwsAlgorithm::kEs512}) {
    if (name == JwsAlgorithmName(a)) return a;
  }
  return std::nullopt;
}

JwsAlgorithm JwsAlgorithmFor(KeyType type) {
  switch (type) {
    case KeyType::kEcP256: return JwsAlgorithm::kEs256;
    case KeyType::kEcP384: return JwsAlgorithm::kEs384;
    case KeyType::kEcP521: return JwsAlgorithm::kEs512;
    default: return JwsAlgorithm::kRs256;
  }
}

bool JwsAlgorithmMatches(JwsAlgorithm alg, KeyType type) { return JwsAlgorithmFor(type) == alg; }

std::size_t EcdsaRawSignatureSize(KeyType type) {
  switch (type) {
    case KeyType::kEcP256: return 64;
    case KeyType::kEcP384: return 96;
    case KeyType::kEcP521: return 132;
    default: return 0;
  }
}

Result<std::string> EcdsaDerToRaw(std::string_view der, KeyType type) {
  const std::size_t size = EcdsaRawSignatureSize(type);
  if (size == 0) return InvalidArgument("not an ECDSA key type");
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) return OpenSslError(StatusCode::kInvalidArgument, "parsing a DER ECDSA signature");
  if (p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    return InvalidArgument("trailing bytes after the DER ECDSA signature");
  }
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  const int half = static_cast<int>(size / 2);
  std::string raw(size, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  if (BN_bn2binpad(r, out, half) != half || BN_bn2binpad(s, out + half, half) != half) {
    DrainOpenSslErrors();
    return InvalidArgument("ECDSA signature value larger than the curve size");
  }
  return raw;
}

Result<std::string> EcdsaRawToDer(std::string_view raw, KeyType type) {
  const std::size_t size = EcdsaRawSignatureSize(type);
  if (size == 0) return InvalidArgument("not an ECDSA key type");
  if (raw.size() != size) {
    return InvalidArgument("invalid ECDSA signature size " + std::to_string(raw.size()) + " (want " +
                           std::to_string(size) + ")");
  }
  const auto* in = reinterpret_cast<const unsigned char*>(raw.data());
  const int half = static_cast<int>(size / 2);
  BigNumPtr r(BN_bin2bn(in, half, nullptr));
  BigNumPtr s(BN_bin2bn(in + half, half, nullptr));
  EcdsaSigPtr sig(ECDSA_SIG_new());
  if (!r || !s || !sig) return OpenSslError("building an ECDSA signature");
  if (ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return OpenSslError("ECDSA_SIG_set0");
  // ECDSA_SIG_set0 took ownership of r and s.
  (void)r.release();
  (void)s.release();
  const int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) return OpenSslError("encoding an ECDSA signature");
  std::string der(static_cast<std::size_t>(len), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_ECDSA_SIG(sig.get(), &out) != len) return OpenSslError("encoding an ECDSA signature");
  return der;
}

std::string JwsHeaderJson(JwsAlgorithm alg, std::string_view kid) {
  // nlohmann::json sorts keys, giving alg, kid, typ; it also escapes the kid correctly.
  nlohmann::json header;
  header["alg"] = std::string(JwsAlgorithmName(alg));
  header["kid"] = std::string(kid);
  header["typ"] = "JWT";
  try {
    return header.dump();
  } catch (const nlohmann::json::exception&) {
    return {};  // only reachable with a kid that is not UTF-8; SignEncodedClaims rejects those first
  }
}

namespace {

bool IsValidUtf8Kid(std::string_view kid) {
  try {
    (void)nlohmann::json(std::string(kid)).dump();
    return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

}  // namespace

Result<SignedParts> SignEncodedClaims(const signer::SigningKey& key, std::string_view kid,
                                      std::string_view claims_b64url) {
  if (kid.empty() || kid.size() > 1024) return InvalidArgument("kid must be 1 to 1024 bytes");
  if (!IsValidUtf8Kid(kid)) return InvalidArgument("kid is not valid UTF-8");
  auto decoded = Base64UrlDecode(claims_b64url);
  if (!decoded.ok()) return decoded.status().WithContext("claims are not unpadded base64url");
  const auto first = decoded->find_first_not_of(" \t\r\n");
  if (first == std::string::npos || (*decoded)[first] != '{') {
    return InvalidArgument("claims do not decode to a JSON object (encoded twice?)");
  }
  const JwsAlgorithm alg = JwsAlgorithmFor(key.type());
  SignedParts parts;
  parts.header = Base64UrlEncode(JwsHeaderJson(alg, kid));
  std::string signing_input;
  signing_input.reserve(parts.header.size() + 1 + claims_b64url.size());
  signing_input.append(parts.header).append(".").append(claims_b64url);
  KH_ASSIGN_OR_RETURN(std::string sig, key.Sign(signing_input));
  if (!IsRsa(key.type())) {
    KH_ASSIGN_OR_RETURN(sig, EcdsaDerToRaw(sig, key.type()));
  }
  parts.signature = Base64UrlEncode(sig);
  return parts;
}

Result<std::string> SignCompact(const signer::SigningKey& key, std::string_view kid, std::string_view claims_json) {
  const std::string payload = Base64UrlEncode(claims_json);
  KH_ASSIGN_OR_RETURN(SignedParts parts, SignEncodedClaims(key, kid, payload));
  return parts.header + "." + payload + "." + parts.signature;
}

Status VerifyJwsSignature(JwsAlgorithm alg, const EVP_PKEY* public_key, KeyType key_type,
                          std::string_view signing_input, std::string_view signature) {
  if (!JwsAlgorithmMatches(alg, key_type)) {
    return FailedPrecondition("algorithm " + std::string(JwsAlgorithmName(alg)) + " does not match the " +
                              std::string(KeyTypeName(key_type)) + " key");
  }
  if (IsRsa(key_type)) return signer::VerifySignature(public_key, key_type, signing_input, signature);
  auto der = EcdsaRawToDer(signature, key_type);
  if (!der.ok()) return PermissionDenied(der.status().message());
  return signer::VerifySignature(public_key, key_type, signing_input, *der);
}

}  // namespace kubehsm::jwt
