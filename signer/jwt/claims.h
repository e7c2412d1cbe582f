// The claims of Kubernetes bound service-account tokens (spec §3.3), built from typed fields or
// validated from a JSON document, and serialized as go-jose does: compact JSON with members sorted
// by name at every level, `aud` always an array.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace kubehsm::jwt {

// TokenRequest's expirationSeconds bounds: at least 10 minutes, below 2^32 seconds.
inline constexpr int64_t kDefaultExpirationSeconds = 3600;
inline constexpr int64_t kMinExpirationSeconds = 600;
inline constexpr int64_t kMaxExpirationSeconds = (int64_t{1} << 32) - 1;
// Largest claims document kubehsm signs (Kubernetes has none of its own; this keeps a mistaken file
// from producing a token no HTTP header can carry).
inline constexpr std::size_t kMaxClaimsBytes = 64 * 1024;

// A Kubernetes object a token refers to.
struct ObjectRef {
  std::string name;
  std::string uid;
};

// What `kubectl create token` / TokenRequest would ask for.
struct BoundTokenRequest {
  std::string issuer;                  // becomes `iss`
  std::vector<std::string> audiences;  // `aud`; empty means {issuer} (kube's --api-audiences default)
  std::string namespace_name;          // DNS-1123 label
  std::string service_account_name;    // DNS-1123 subdomain
  std::string service_account_uid;     // required: kube-apiserver compares it with the live object
  // At most one bound object: pod, secret or node. `node` together with `pod` is the pod's node
  // (ServiceAccountTokenPodNodeInfo), whose uid may then be empty.
  std::optional<ObjectRef> pod;
  std::optional<ObjectRef> secret;
  std::optional<ObjectRef> node;
  int64_t expiration_seconds = kDefaultExpirationSeconds;  // [600, 2^32)
};

// Returns the claims JSON for `request` at time `now` (Unix seconds) with the given `jti`:
// iss, sub "system:serviceaccount:<ns>:<name>", aud (array), exp = now + expiration, iat = nbf =
// now, jti, and the `kubernetes.io` object. kInvalidArgument naming the first bad field when a
// name is not a valid Kubernetes name, a uid or the issuer is empty, audiences are empty strings,
// the expiration is out of range, or the bound objects are combined in a way Kubernetes never
// produces (pod with secret, secret with node, an object without name or uid).
Result<std::string> BuildBoundClaims(const BoundTokenRequest& request, int64_t now, std::string_view jti);

// Validates a claims document supplied by the user (e.g. `--claims FILE`) and returns it
// re-serialized compact and sorted. Required: an object of at most kMaxClaimsBytes with `iss`
// (non-empty string), `sub` (system:serviceaccount:<ns>:<name>), `aud` (a non-empty string or
// array of non-empty strings; always emitted as an array), `exp` (integer), and a `kubernetes.io`
// object obeying the rules of BuildBoundClaims whose namespace and serviceaccount.name equal those
// in `sub`. `iat` and `nbf` default to `now`, `jti` to `jti_if_missing`; exp must be after iat and
// nbf and less than 2^32 s after iat. Unknown claims are kept. kInvalidArgument on any violation,
// with a message naming the claim.
Result<std::string> NormalizeClaimsDocument(std::string_view json_text, int64_t now, std::string_view jti_if_missing);

// A random (version 4) UUID in lower-case 8-4-4-4-12 form, from OpenSSL's CSPRNG.
Result<std::string> NewJti();

// Validation helpers shared with the CLI: Kubernetes name rules (apimachinery validation).
// DNS-1123 label: 1..63 of [a-z0-9-], starting and ending alphanumeric (namespaces).
bool IsDns1123Label(std::string_view s);
// DNS-1123 subdomain: 1..253, dot-separated labels of the same alphabet (service accounts, pods,
// secrets, nodes).
bool IsDns1123Subdomain(std::string_view s);

}  // namespace kubehsm::jwt
