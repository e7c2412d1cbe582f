#include "signer/jwt/verify.h"

#include <algorithm>
#include <utility>

#include <nlohmann/json.hpp>
#include <openssl/pem.h>

#include "common/openssl_error.h"
#include "common/base64.h"
#include "signer/jwt/json_util.h"
#include "signer/jwt/kid.h"
#include "signer/public_key_check.h"
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

template <typename T>
bool Contains(const std::vector<T>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

template <typename T>
std::string Join(const std::vector<T>& v) {
  std::string out;
  for (const auto& s : v) {
    out += out.empty() ? "\"" : ", \"";
    out += s;
    out += '"';
  }
  return "[" + out + "]";
}

// The member `name` of `object`, or nullptr: one map lookup, no copies.
const json* Member(const json::object_t& object, std::string_view name) {
  const auto it = object.find(name);
  return it == object.end() ? nullptr : &it->second;
}

// A string member known to be a string, by reference into the document.
std::string_view Str(const json& j) { return j.get_ref<const std::string&>(); }

// Reads an optional {name, uid} member of kubernetes.io. The views point into `k8s`.
bool ReadRef(const json::object_t& k8s, const char* key, std::string_view& name, std::string_view& uid,
             std::string& error) {
  const json* j = Member(k8s, key);
  if (j == nullptr) return true;
  const json* n = nullptr;
  const json* u = nullptr;
  if (j->is_object()) {
    const auto& ref = j->get_ref<const json::object_t&>();
    n = Member(ref, "name");
    u = Member(ref, "uid");
  }
  if (!j->is_object() || (n != nullptr && !n->is_string()) || (u != nullptr && !u->is_string())) {
    error = std::string("kubernetes.io.") + key + " must be an object of strings {name, uid}";
    return false;
  }
  name = n != nullptr ? Str(*n) : std::string_view();
  uid = u != nullptr ? Str(*u) : std::string_view();
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
  KH_RETURN_IF_ERROR(signer::CheckPublicKey(key.get()));
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
  KH_RETURN_IF_ERROR(signer::CheckPublicKey(key.get()));
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
  // Claim values below are read by reference into the parsed documents, which outlive them.
  const json::object_t& claims = payload->get_ref<const json::object_t&>();

  // 2. Issuer, before any key is looked at (kube-apiserver's hasCorrectIssuer).
  const json* iss = Member(claims, "iss");
  if (iss == nullptr || !iss->is_string()) {
    return Fail(TokenError::kWrongIssuer, "token has no \"iss\" claim");
  }
  const std::string_view issuer = Str(*iss);
  if (!Contains(options.issuers, issuer)) {
    return Fail(TokenError::kWrongIssuer,
                "token issuer \"" + std::string(issuer) + "\" is not one of " + Join(options.issuers));
  }

  // 3. Header and algorithm allowlist.
  auto header_text = Base64UrlDecode(header_b64);
  if (!header_text.ok()) return Fail(TokenError::kMalformed, "header: " + header_text.status().message());
  auto header_json = internal::ParseJsonObject(*header_text, "header");
  if (!header_json.ok()) return Fail(TokenError::kMalformed, header_json.status().message());
  const json::object_t& header = header_json->get_ref<const json::object_t&>();
  const json* alg_member = Member(header, "alg");
  if (alg_member == nullptr || !alg_member->is_string()) return Fail(TokenError::kMalformed, "header has no \"alg\"");
  const std::string_view alg_name = Str(*alg_member);
  const auto alg = ParseJwsAlgorithm(alg_name);
  if (!alg) {
    return Fail(TokenError::kDisallowedAlgorithm,
                "algorithm \"" + std::string(alg_name) + "\" is not allowed (RS256, ES256, ES384, ES512 only)");
  }
  if (Member(header, "crit") != nullptr) {
    return Fail(TokenError::kMalformed, "header has unsupported \"crit\" parameters");
  }
  std::string_view kid;
  if (const json* kid_member = Member(header, "kid")) {
    if (!kid_member->is_string()) return Fail(TokenError::kMalformed, "header \"kid\" must be a string");
    kid = Str(*kid_member);
  }
  auto signature = Base64UrlDecode(signature_b64);
  if (!signature.ok()) return Fail(TokenError::kMalformed, "signature: " + signature.status().message());

  // 4. Keys by kid, each candidate tried (kube's PublicKeysGetter semantics).
  const auto is_candidate = [kid](const VerificationKey& k) { return kid.empty() || k.kid == kid; };
  const VerificationKey* first_candidate = nullptr;
  std::size_t candidate_count = 0;
  for (const auto& k : keys) {
    if (!is_candidate(k)) continue;
    if (first_candidate == nullptr) first_candidate = &k;
    ++candidate_count;
  }
  if (candidate_count == 0) {
    return Fail(TokenError::kUnknownKid, kid.empty() ? "no verification keys"
                                                     : "invalid signature, no keys found for kid \"" +
                                                           std::string(kid) + "\"");
  }
  const std::string_view signing_input = token.substr(0, dot2);
  const VerificationKey* verified_by = nullptr;
  bool any_type_matched = false;
  for (const VerificationKey& k : keys) {
    if (!is_candidate(k) || !JwsAlgorithmMatches(*alg, k.type)) continue;
    any_type_matched = true;
    if (VerifyJwsSignature(*alg, k.public_key.get(), k.type, signing_input, *signature).ok()) {
      verified_by = &k;
      break;
    }
  }
  if (verified_by == nullptr) {
    if (!any_type_matched) {
      return Fail(TokenError::kAlgorithmKeyMismatch,
                  "algorithm " + std::string(alg_name) + " cannot be used with the " +
                      std::string(KeyTypeName(first_candidate->type)) + " key" + (candidate_count > 1 ? "s" : "") +
                      (kid.empty() ? "" : " of kid \"" + std::string(kid) + "\""));
    }
    return Fail(TokenError::kInvalidSignature, "signature does not verify with any candidate key");
  }

  // 5. Audience: string or array; absent means the implicit (API) audiences, which default to the issuers.
  std::vector<std::string_view> token_auds;
  if (const json* aud = Member(claims, "aud")) {
    if (aud->is_string()) {
      token_auds.push_back(Str(*aud));
    } else if (aud->is_array()) {
      const auto& entries = aud->get_ref<const json::array_t&>();
      token_auds.reserve(entries.size());
      for (const json& a : entries) {
        if (!a.is_string()) return Fail(TokenError::kMalformed, "\"aud\" entries must be strings");
        token_auds.push_back(Str(a));
      }
    } else {
      return Fail(TokenError::kMalformed, "\"aud\" must be a string or an array of strings");
    }
  }
  if (token_auds.empty()) token_auds.assign(options.issuers.begin(), options.issuers.end());
  const std::vector<std::string>& accepted = options.audiences.empty() ? options.issuers : options.audiences;
  std::vector<std::string> intersection;
  for (const std::string_view a : token_auds) {
    if (Contains(accepted, a) && !Contains(intersection, a)) intersection.emplace_back(a);
  }
  if (intersection.empty()) {
    return Fail(TokenError::kWrongAudience,
                "token audiences " + Join(token_auds) + " are invalid for the target audiences " + Join(accepted));
  }

  // 6. Time claims with leeway, in go-jose's order: nbf, exp, iat.
  std::optional<int64_t> exp, iat, nbf;
  for (auto [name, slot] : {std::pair{"exp", &exp}, std::pair{"iat", &iat}, std::pair{"nbf", &nbf}}) {
    const json* value = Member(claims, name);
    if (value == nullptr) continue;
    *slot = internal::AsNumericDate(*value);
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
  const json* k8s_member = Member(claims, "kubernetes.io");
  if (k8s_member == nullptr || !k8s_member->is_object()) {
    return Fail(TokenError::kMalformed,
                "no \"kubernetes.io\" claim: not a bound service-account token (legacy secret tokens are not supported)");
  }
  const json::object_t& k8s = k8s_member->get_ref<const json::object_t&>();
  const json* ns_member = Member(k8s, "namespace");
  if (ns_member == nullptr || !ns_member->is_string() || Str(*ns_member).empty()) {
    return Fail(TokenError::kMalformed, "kubernetes.io.namespace must be a non-empty string");
  }
  const std::string_view namespace_name = Str(*ns_member);
  std::string error;
  std::string_view sa_name, sa_uid, pod_name, pod_uid, secret_name, secret_uid, node_name, node_uid;
  if (!ReadRef(k8s, "serviceaccount", sa_name, sa_uid, error) || !ReadRef(k8s, "pod", pod_name, pod_uid, error) ||
      !ReadRef(k8s, "secret", secret_name, secret_uid, error) || !ReadRef(k8s, "node", node_name, node_uid, error)) {
    return Fail(TokenError::kMalformed, error);
  }
  if (sa_name.empty()) return Fail(TokenError::kMalformed, "kubernetes.io.serviceaccount.name is missing");
  std::string_view jti;
  if (const json* jti_member = Member(claims, "jti")) {
    if (!jti_member->is_string()) return Fail(TokenError::kMalformed, "\"jti\" must be a string");
    jti = Str(*jti_member);
  }

  VerifyResult result;
  ServiceAccountIdentity& id = result.identity;
  id.namespace_name = namespace_name;
  id.service_account_name = sa_name;
  constexpr std::string_view kUserPrefix = "system:serviceaccount:";
  id.username.reserve(kUserPrefix.size() + namespace_name.size() + 1 + sa_name.size());
  id.username.append(kUserPrefix).append(namespace_name).append(1, ':').append(sa_name);
  id.uid = sa_uid;
  id.groups.reserve(3);
  id.groups.emplace_back("system:serviceaccounts");
  id.groups.emplace_back("system:serviceaccounts:").append(namespace_name);
  id.groups.emplace_back("system:authenticated");
  if (!pod_name.empty() && !pod_uid.empty()) {
    id.extra["authentication.kubernetes.io/pod-name"].emplace_back(pod_name);
    id.extra["authentication.kubernetes.io/pod-uid"].emplace_back(pod_uid);
  }
  if (!jti.empty()) id.extra["authentication.kubernetes.io/credential-id"].emplace_back("JTI=").append(jti);
  if (!node_name.empty()) {
    id.extra["authentication.kubernetes.io/node-name"].emplace_back(node_name);
    if (!node_uid.empty()) id.extra["authentication.kubernetes.io/node-uid"].emplace_back(node_uid);
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
