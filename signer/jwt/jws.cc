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
