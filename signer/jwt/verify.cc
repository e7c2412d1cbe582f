#include "signer/jwt/verify.h"

#include <algorithm>

#include <nlohmann/json.hpp>
#include <openssl/pem.h>

#include "common/openssl_error.h"
#include "common/base64.h"
#include "signer/jwt/json_util.h"
#include "signer/jwt/kid.h"
#include "signer/signing_key.h"

namespace kubehsm::jwt {
namespace {

using nlohmann::json;

VerifyResult Fail(TokenError error, std::string message) {
  VerifyResult r;
  r.error = error;
  r.message = std::move(message);
  return r;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "\"" : ", \"") + s + "\"";
  return "[" + out + "]";
}

// Reads an optional {name, uid} member of kubernetes.io.
bool ReadRef(const json& k8s, const char* key, std::string& name, std::string& uid, std::string& error) {
  if (!k8s.contains(key)) return true;
  const json& j = k8s[key];
  if (!j.is_object() || (j.contains("name") && !j["name"].is_string()) || (j.contains("uid") && !j["uid"].is_string())) {
    error = std::string("kubernetes.io.") + key + " must be an object of strings {name, uid}";
    return false;
  }
  name = j.value("name", "");
  uid = j.value("uid", "");
  return true;
}

}  // namespace

std::string_view TokenErrorName(TokenError error) {
  switch (error) {
    case TokenError::kNone: return "ok";
    case TokenError::kMalformed: return "malformed";
    case TokenError::kWrongIssuer: return "wrong issuer";
    case TokenError::kDisallowedAlgorithm: return "disallowed algorithm";
    case TokenError::kUnknownKid: return "unknown kid";
    case TokenError::kAlgorithmKeyMismatch: return "algorithm does not match key";
    case TokenError::kInvalidSignature: return "invalid signature";
    case TokenError::kWrongAudience: return "wrong audience";
    case TokenError::kExpired: return "expired";
    case TokenError::kNotYetValid: return "not yet valid";
    case TokenError::kIssuedInFuture: return "issued in the future";
  }
  return "unknown";
}

Result<VerificationKey> VerificationKeyFromSpki(std::string_view spki_der, std::string kid) {
  KH_ASSIGN_OR_RETURN(EvpPkeyPtr key, signer::ParseSpkiDer(spki_der));
  KH_ASSIGN_OR_RETURN(KeyType type, signer::KeyTypeOf(key.get()));
  if (kid.empty()) {
    KH_ASSIGN_OR_RETURN(kid, KidFromSpki(spki_der));
  }
  return VerificationKey{std::move(kid), type, std::move(key)};
}

Result<VerificationKey> VerificationKeyFromPem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return OpenSslError("BIO_new_mem_buf");
  EvpPkeyPtr key(PEM_read_bio_PUBKEY_ex(bio.get(), nullptr, nullptr, nullptr, nullptr, "provider=default"));
  if (!key) return OpenSslError(StatusCode::kInvalidArgument, "reading a PEM PUBLIC KEY");
  KH_ASSIGN_OR_RETURN(KeyType type, signer::KeyTypeOf(key.get()));
  KH_ASSIGN_OR_RETURN(std::string kid, KidOf(key.get()));
  return VerificationKey{std::move(kid), type, std::move(key)};
}

VerifyResult VerifyServiceAccountToken(std::string_view token, const std::vector<VerificationKey>& keys,
                                       const VerifyOptions& options) {
  // 1. Structure: three base64url segments, header and payload JSON objects.
  const std::size_t dot1 = token.find('.');
  const std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return Fail(TokenError::kMalformed, "a JWS compact token has exactly three dot-separated parts");
  }
  const std::string_view header_b64 = token.substr(0, dot1);
  const std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view signature_b64 = token.substr(dot2 + 1);
  if (header_b64.empty() || payload_b64.empty() || signature_b64.empty()) {
    return Fail(TokenError::kMalformed, "empty token part");
  }
  auto payload_text = Base64UrlDecode(payload_b64);
  if (!payload_text.ok()) return Fail(TokenError::kMalformed, "payload: " + payload_text.status().message());
  auto payload = internal::ParseJsonObject(*payload_text, "payload");
  if (!payload.ok()) return Fail(TokenError::kMalformed, payload.status().message());
  const json& claims = *payload;

  // 2. Issuer, before any key is looked at (kube-apiserver's hasCorrectIssuer).
  if (!claims.contains("iss") || !claims["iss"].is_string()) {
    return Fail(TokenError::kWrongIssuer, "token has no \"iss\" claim");
  }
  const std::string issuer = claims["iss"].get<std::string>();
  if (!Contains(options.issuers, issuer)) {
    return Fail(TokenError::kWrongIssuer, "token issuer \"" + issuer + "\" is not one of " + Join(options.issuers));
  }

  // 3. Header and algorithm allowlist.
  auto header_text = Base64UrlDecode(header_b64);
  if (!header_text.ok()) return Fail(TokenError::kMalformed, "header: " + header_text.status().message());
  auto header_json = internal::ParseJsonObject(*header_text, "header");
  if (!header_json.ok()) return Fail(TokenError::kMalformed, header_json.status().message());
  const json& header = *header_json;
  if (!header.contains("alg") || !header["alg"].is_string()) return Fail(TokenError::kMalformed, "header has no \"alg\"");
  const std::string alg_name = header["alg"].get<std::string>();
  const auto alg = ParseJwsAlgorithm(alg_name);
  if (!alg) {
    return Fail(TokenError::kDisallowedAlgorithm,
                "algorithm \"" + alg_name + "\" is not allowed (RS256, ES256, ES384, ES512 only)");
  }
  if (header.contains("crit")) return Fail(TokenError::kMalformed, "header has unsupported \"crit\" parameters");
  std::string kid;
  if (header.contains("kid")) {
    if (!header["kid"].is_string()) return Fail(TokenError::kMalformed, "header \"kid\" must be a string");
    kid = header["kid"].get<std::string>();
  }
  auto signature = Base64UrlDecode(signature_b64);
  if (!signature.ok()) return Fail(TokenError::kMalformed, "signature: " + signature.status().message());

  // 4. Keys by kid, each candidate tried (kube's PublicKeysGetter semantics).
  std::vector<const VerificationKey*> candidates;
  for (const auto& k : keys) {
    if (kid.empty() || k.kid == kid) candidates.push_back(&k);
  }
  if (candidates.empty()) {
    return Fail(TokenError::kUnknownKid,
                kid.empty() ? "no verification keys" : "invalid signature, no keys found for kid \"" + kid + "\"");
  }
  const std::string_view signing_input = token.substr(0, dot2);
  const VerificationKey* verified_by = nullptr;
  bool any_type_matched = false;
  for (const VerificationKey* k : candidates) {
    if (!JwsAlgorithmMatches(*alg, k->type)) continue;
    any_type_matched = true;
    if (VerifyJwsSignature(*alg, k->public_key.get(), k->type, signing_input, *signature).ok()) {
      verified_by = k;
      break;
    }
  }
  if (verified_by == nullptr) {
    if (!any_type_matched) {
      return Fail(TokenError::kAlgorithmKeyMismatch,
                  "algorithm " + alg_name + " cannot be used with the " + std::string(KeyTypeName(candidates[0]->type)) +
                      " key" + (candidates.size() > 1 ? "s" : "") + (kid.empty() ? "" : " of kid \"" + kid + "\""));
    }
    return Fail(TokenError::kInvalidSignature, "signature does not verify with any candidate key");
  }

  // 5. Audience: string or array; absent means the implicit (API) audiences, which default to the issuers.
  std::vector<std::string> token_auds;
  if (claims.contains("aud")) {
    const json& aud = claims["aud"];
    if (aud.is_string()) {
      token_auds.push_back(aud.get<std::string>());
    } else if (aud.is_array()) {
      for (const auto& a : aud) {
        if (!a.is_string()) return Fail(TokenError::kMalformed, "\"aud\" entries must be strings");
        token_auds.push_back(a.get<std::string>());
      }
    } else {
      return Fail(TokenError::kMalformed, "\"aud\" must be a string or an array of strings");
    }
  }
  if (token_auds.empty()) token_auds = options.issuers;
  const std::vector<std::string>& accepted = options.audiences.empty() ? options.issuers : options.audiences;
  std::vector<std::string> intersection;
  for (const auto& a : token_auds) {
    if (Contains(accepted, a) && !Contains(intersection, a)) intersection.push_back(a);
  }
  if (intersection.empty()) {
    return Fail(TokenError::kWrongAudience,
                "token audiences " + Join(token_auds) + " are invalid for the target audiences " + Join(accepted));
  }

  // 6. Time claims with leeway, in go-jose's order: nbf, exp, iat.
  std::optional<int64_t> exp, iat, nbf;
  for (auto [name, slot] : {std::pair{"exp", &exp}, std::pair{"iat", &iat}, std::pair{"nbf", &nbf}}) {
    if (!claims.contains(name)) continue;
    *slot = internal::AsNumericDate(claims[name]);
    if (!*slot) return Fail(TokenError::kMalformed, std::string("\"") + name + "\" must be a number");
  }
  const int64_t now = options.now, leeway = options.leeway_seconds;
  if (nbf && now + leeway < *nbf) {
    return Fail(TokenError::kNotYetValid, "token is not valid yet (nbf " + std::to_string(*nbf) + ", now " +
                                              std::to_string(now) + ")");
  }
  if (exp && now - leeway > *exp) {
    return Fail(TokenError::kExpired, "token has expired (exp " + std::to_string(*exp) + ", now " + std::to_string(now) + ")");
  }
  if (iat && now + leeway < *iat) {
    return Fail(TokenError::kIssuedInFuture, "token is issued in the future (iat " + std::to_string(*iat) + ", now " +
                                                 std::to_string(now) + ")");
  }

  // 7. kubernetes.io private claims into the identity (ServiceAccountInfo.UserInfo).
  if (!claims.contains("kubernetes.io") || !claims["kubernetes.io"].is_object()) {
    return Fail(TokenError::kMalformed,
                "no \"kubernetes.io\" claim: not a bound service-account token (legacy secret tokens are not supported)");
  }
  const json& k8s = claims["kubernetes.io"];
  if (!k8s.contains("namespace") || !k8s["namespace"].is_string() || k8s["namespace"].get<std::string>().empty()) {
    return Fail(TokenError::kMalformed, "kubernetes.io.namespace must be a non-empty string");
  }
  std::string error, sa_name, sa_uid, pod_name, pod_uid, secret_name, secret_uid, node_name, node_uid;
  if (!ReadRef(k8s, "serviceaccount", sa_name, sa_uid, error) || !ReadRef(k8s, "pod", pod_name, pod_uid, error) ||
      !ReadRef(k8s, "secret", secret_name, secret_uid, error) || !ReadRef(k8s, "node", node_name, node_uid, error)) {
    return Fail(TokenError::kMalformed, error);
  }
  if (sa_name.empty()) return Fail(TokenError::kMalformed, "kubernetes.io.serviceaccount.name is missing");
  std::string jti;
  if (claims.contains("jti")) {
    if (!claims["jti"].is_string()) return Fail(TokenError::kMalformed, "\"jti\" must be a string");
    jti = claims["jti"].get<std::string>();
  }

  VerifyResult result;
  ServiceAccountIdentity& id = result.identity;
  id.namespace_name = k8s["namespace"].get<std::string>();
  id.service_account_name = sa_name;
  id.username = "system:serviceaccount:" + id.namespace_name + ":" + sa_name;
  id.uid = sa_uid;
  id.groups = {"system:serviceaccounts", "system:serviceaccounts:" + id.namespace_name, "system:authenticated"};
  if (!pod_name.empty() && !pod_uid.empty()) {
    id.extra["authentication.kubernetes.io/pod-name"] = {pod_name};
    id.extra["authentication.kubernetes.io/pod-uid"] = {pod_uid};
  }
  if (!jti.empty()) id.extra["authentication.kubernetes.io/credential-id"] = {"JTI=" + jti};
  if (!node_name.empty()) {
    id.extra["authentication.kubernetes.io/node-name"] = {node_name};
    if (!node_uid.empty()) id.extra["authentication.kubernetes.io/node-uid"] = {node_uid};
  }
  id.audiences = std::move(intersection);
  id.issuer = issuer;
  id.kid = verified_by->kid;
  id.algorithm = *alg;
  id.expires_at = exp;
  id.issued_at = iat;
  id.not_before = nbf;
  id.jti = jti;
  return result;
}

}  // namespace kubehsm::jwt
