#include "signer/jwt/claims.h"

#include <utility>

#include <openssl/rand.h>

#include <nlohmann/json.hpp>

#include "common/openssl_error.h"
#include "signer/jwt/json_util.h"

namespace kubehsm::jwt {
namespace {

using nlohmann::json;
constexpr std::string_view kSubjectPrefix = "system:serviceaccount:";

bool IsAlnumLower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// Printable, no control characters (uids, issuer, audiences end up in logs and headers).
bool IsPrintableText(std::string_view s, std::size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

Status CheckName(std::string_view field, std::string_view value, bool label) {
  if (label ? IsDns1123Label(value) : IsDns1123Subdomain(value)) return OkStatus();
  return InvalidArgument(std::string(field) + " \"" + std::string(value) + "\" is not a valid Kubernetes name (" +
                         (label ? "DNS-1123 label" : "DNS-1123 subdomain") + ")");
}

Status CheckUid(std::string_view field, std::string_view value) {
  if (IsPrintableText(value, 256)) return OkStatus();
  return InvalidArgument(std::string(field) + " must be 1 to 256 printable characters");
}

Status CheckRef(std::string_view what, const ObjectRef& ref, bool uid_required) {
  KH_RETURN_IF_ERROR(CheckName(std::string(what) + " name", ref.name, false));
  if (uid_required || !ref.uid.empty()) KH_RETURN_IF_ERROR(CheckUid(std::string(what) + " uid", ref.uid));
  return OkStatus();
}

Status CheckBinding(bool pod, bool secret, bool node) {
  if (pod && secret) return InvalidArgument("a token is bound to at most one object: pod and secret given");
  if (secret && node) return InvalidArgument("a token is bound to at most one object: secret and node given");
  return OkStatus();
}

json RefJson(const ObjectRef& ref) {
  json j;
  j["name"] = ref.name;
  j["uid"] = ref.uid;
  return j;
}

// Validates {name, uid} read from a claims document.
Result<ObjectRef> RefFromJson(const json& parent, const char* key, bool uid_required) {
  const std::string where = std::string("kubernetes.io.") + key;
  const json& j = parent.at(key);
  if (!j.is_object()) return InvalidArgument(where + " must be an object");
  ObjectRef ref;
  if (!j.contains("name") || !j["name"].is_string()) return InvalidArgument(where + ".name must be a string");
  ref.name = j["name"].get<std::string>();
  if (j.contains("uid")) {
    if (!j["uid"].is_string()) return InvalidArgument(where + ".uid must be a string");
    ref.uid = j["uid"].get<std::string>();
  }
  KH_RETURN_IF_ERROR(CheckRef(where, ref, uid_required));
  return ref;
}

Status CheckIssuer(std::string_view issuer) {
  if (!IsPrintableText(issuer, 2048) || issuer.find(' ') != std::string_view::npos) {
    return InvalidArgument("issuer must be 1 to 2048 printable characters without spaces");
  }
  return OkStatus();
}

Status CheckAudience(std::string_view aud) {
  if (!IsPrintableText(aud, 2048)) return InvalidArgument("each audience must be 1 to 2048 printable characters");
  return OkStatus();
}

}  // namespace

bool IsDns1123Label(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!IsAlnumLower(s.front()) || !IsAlnumLower(s.back())) return false;
  for (char c : s) {
    if (!IsAlnumLower(c) && c != '-') return false;
  }
  return true;
}

bool IsDns1123Subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = s.find('.', start);
    const std::string_view label = s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || !IsAlnumLower(label.front()) || !IsAlnumLower(label.back())) return false;
    for (char c : label) {
      if (!IsAlnumLower(c) && c != '-') return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

Result<std::string> NewJti() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof(b)) != 1) return OpenSslError("RAND_bytes");
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4 (RFC 9562 §5.4)
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // variant 10
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kHex[b[i] >> 4];
    out += kHex[b[i] & 0x0f];
  }
  return out;
}

Result<std::string> BuildBoundClaims(const BoundTokenRequest& r, int64_t now, std::string_view jti) {
  KH_RETURN_IF_ERROR(CheckIssuer(r.issuer));
  for (const auto& a : r.audiences) KH_RETURN_IF_ERROR(CheckAudience(a));
  KH_RETURN_IF_ERROR(CheckName("namespace", r.namespace_name, true));
  KH_RETURN_IF_ERROR(CheckName("service account", r.service_account_name, false));
  KH_RETURN_IF_ERROR(CheckUid("service account uid", r.service_account_uid));
  KH_RETURN_IF_ERROR(CheckBinding(r.pod.has_value(), r.secret.has_value(), r.node.has_value()));
  if (r.pod) KH_RETURN_IF_ERROR(CheckRef("pod", *r.pod, true));
  if (r.secret) KH_RETURN_IF_ERROR(CheckRef("secret", *r.secret, true));
  // A pod's node may lack a uid (the Node object was not found); a node-bound token needs one.
  if (r.node) KH_RETURN_IF_ERROR(CheckRef("node", *r.node, !r.pod.has_value()));
  if (r.expiration_seconds < kMinExpirationSeconds || r.expiration_seconds > kMaxExpirationSeconds) {
    return InvalidArgument("expiration must be at least " + std::to_string(kMinExpirationSeconds) +
                           " seconds and less than 2^32 seconds");
  }
  if (jti.empty()) return InvalidArgument("jti must not be empty");

  json k8s;
  k8s["namespace"] = r.namespace_name;
  k8s["serviceaccount"] = RefJson({r.service_account_name, r.service_account_uid});
  if (r.pod) k8s["pod"] = RefJson(*r.pod);
  if (r.secret) k8s["secret"] = RefJson(*r.secret);
  if (r.node) {
    json node;
    node["name"] = r.node->name;
    if (!r.node->uid.empty()) node["uid"] = r.node->uid;
    k8s["node"] = node;
  }
  json claims;
  claims["iss"] = r.issuer;
  claims["sub"] = std::string(kSubjectPrefix) + r.namespace_name + ":" + r.service_account_name;
  claims["aud"] = r.audiences.empty() ? json::array({r.issuer}) : json(r.audiences);
  claims["exp"] = now + r.expiration_seconds;
  claims["iat"] = now;
  claims["nbf"] = now;
  claims["jti"] = std::string(jti);
  claims["kubernetes.io"] = std::move(k8s);
  return internal::DumpCompact(claims);
}

Result<std::string> NormalizeClaimsDocument(std::string_view text, int64_t now, std::string_view jti_if_missing) {
  if (text.size() > kMaxClaimsBytes) {
    return InvalidArgument("claims document is " + std::to_string(text.size()) + " bytes, larger than the " +
                           std::to_string(kMaxClaimsBytes) + "-byte limit");
  }
  KH_ASSIGN_OR_RETURN(json claims, internal::ParseJsonObject(text, "claims"));

  for (const char* required : {"iss", "sub", "aud", "exp"}) {
    if (!claims.contains(required)) return InvalidArgument(std::string("claims: missing required claim \"") + required + "\"");
  }
  if (!claims["iss"].is_string()) return InvalidArgument("claims: \"iss\" must be a string");
  KH_RETURN_IF_ERROR(CheckIssuer(claims["iss"].get<std::string>()).WithContext("claims: iss"));

  // sub: system:serviceaccount:<namespace>:<name>
  if (!claims["sub"].is_string()) return InvalidArgument("claims: \"sub\" must be a string");
  const std::string sub = claims["sub"].get<std::string>();
  const std::string_view rest = std::string_view(sub).substr(0, kSubjectPrefix.size()) == kSubjectPrefix
                                    ? std::string_view(sub).substr(kSubjectPrefix.size())
                                    : std::string_view();
  const std::size_t colon = rest.find(':');
  if (rest.empty() || colon == std::string_view::npos) {
    return InvalidArgument("claims: \"sub\" must be system:serviceaccount:<namespace>:<name>");
  }
  const std::string ns(rest.substr(0, colon));
  const std::string sa(rest.substr(colon + 1));
  KH_RETURN_IF_ERROR(CheckName("namespace", ns, true).WithContext("claims: sub"));
  KH_RETURN_IF_ERROR(CheckName("service account", sa, false).WithContext("claims: sub"));

  // aud: string or array, always emitted as an array (spec §3.3).
  json& aud = claims["aud"];
  if (aud.is_string()) aud = json::array({aud.get<std::string>()});
  if (!aud.is_array() || aud.empty()) return InvalidArgument("claims: \"aud\" must be a string or a non-empty array");
  for (const auto& a : aud) {
    if (!a.is_string()) return InvalidArgument("claims: every \"aud\" entry must be a string");
    KH_RETURN_IF_ERROR(CheckAudience(a.get<std::string>()).WithContext("claims: aud"));
  }

  // Times: integers (NumericDate as kubehsm emits it).
  for (const char* t : {"exp", "iat", "nbf"}) {
    if (claims.contains(t) && !(claims[t].is_number_integer())) {
      return InvalidArgument(std::string("claims: \"") + t + "\" must be an integer (seconds since the epoch)");
    }
  }
  if (!claims.contains("iat")) claims["iat"] = now;
  if (!claims.contains("nbf")) claims["nbf"] = now;
  const auto exp = internal::AsNumericDate(claims["exp"]);
  const auto iat = internal::AsNumericDate(claims["iat"]);
  const auto nbf = internal::AsNumericDate(claims["nbf"]);
  if (!exp || !iat || !nbf) return InvalidArgument("claims: exp, iat and nbf must fit in 64 bits");
  if (*exp <= *iat || *exp <= *nbf) return InvalidArgument("claims: \"exp\" must be after \"iat\" and \"nbf\"");
  // exp > iat here, so the difference is exact in uint64 (in int64 it can overflow).
  if (static_cast<uint64_t>(*exp) - static_cast<uint64_t>(*iat) > static_cast<uint64_t>(kMaxExpirationSeconds)) {
    return InvalidArgument("claims: lifetime (exp - iat) must be less than 2^32 seconds");
  }

  if (claims.contains("jti")) {
    if (!claims["jti"].is_string() || claims["jti"].get<std::string>().empty()) {
      return InvalidArgument("claims: \"jti\" must be a non-empty string");
    }
  } else {
    if (jti_if_missing.empty()) return InvalidArgument("claims: no jti");
    claims["jti"] = std::string(jti_if_missing);
  }

  // kubernetes.io
  if (!claims.contains("kubernetes.io") || !claims["kubernetes.io"].is_object()) {
    return InvalidArgument("claims: \"kubernetes.io\" must be an object (a service-account token needs it)");
  }
  const json& k8s = claims["kubernetes.io"];
  if (!k8s.contains("namespace") || !k8s["namespace"].is_string() || k8s["namespace"].get<std::string>() != ns) {
    return InvalidArgument("claims: kubernetes.io.namespace must equal the namespace in \"sub\" (" + ns + ")");
  }
  if (!k8s.contains("serviceaccount")) return InvalidArgument("claims: kubernetes.io.serviceaccount is missing");
  KH_ASSIGN_OR_RETURN(ObjectRef sa_ref, RefFromJson(k8s, "serviceaccount", true));
  if (sa_ref.name != sa) {
    return InvalidArgument("claims: kubernetes.io.serviceaccount.name must equal the name in \"sub\" (" + sa + ")");
  }
  const bool pod = k8s.contains("pod"), secret = k8s.contains("secret"), node = k8s.contains("node");
  KH_RETURN_IF_ERROR(CheckBinding(pod, secret, node).WithContext("claims"));
  if (pod) KH_RETURN_IF_ERROR(RefFromJson(k8s, "pod", true).status());
  if (secret) KH_RETURN_IF_ERROR(RefFromJson(k8s, "secret", true).status());
  if (node) KH_RETURN_IF_ERROR(RefFromJson(k8s, "node", !pod).status());
  if (k8s.contains("warnafter") && !k8s["warnafter"].is_number_integer()) {
    return InvalidArgument("claims: kubernetes.io.warnafter must be an integer");
  }
  KH_ASSIGN_OR_RETURN(std::string normalized, internal::DumpCompact(claims));
  // Defaults and re-serialization can grow a document that was just within the limit.
  if (normalized.size() > kMaxClaimsBytes) {
    return InvalidArgument("claims document is " + std::to_string(normalized.size()) + " bytes once normalized, larger than the " +
                           std::to_string(kMaxClaimsBytes) + "-byte limit");
  }
  return normalized;
}

}  // namespace kubehsm::jwt
