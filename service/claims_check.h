// The claims a `kubehsm serve` Sign request may carry: what kube-apiserver sends for a bound
// service-account token (spec §3.3), and nothing a caller of the socket could use to mint a token
// kube-apiserver itself would never ask for (a 100-year lifetime, a duplicated member read
// differently by different JSON decoders, a document that is not a token at all).
#pragma once

#include <cstdint>
#include <string_view>

#include "common/status.h"

namespace kubehsm::service {

// How far in the future `iat` may lie (kube-apiserver sets iat = now on the same machine's clock;
// this leaves room for a slow call and clock steps, not for a token that starts years later).
inline constexpr int64_t kMaxIssuedAtSkewSeconds = 300;

// Checks SignJWTRequest.claims before anything is signed. The claims must be unpadded base64url of
// a JSON object of at most jwt::kMaxClaimsBytes, nested at most 32 levels, without a duplicate
// member at any level, with the registered claims kube-apiserver sends (iss, sub
// "system:serviceaccount:<ns>:<name>", aud, exp, iat, nbf as integers, jti) and the kubernetes.io
// object matching sub (jwt::NormalizeClaimsDocument's rules); exp - iat at most
// `max_lifetime_seconds` (what Metadata advertises), iat at most kMaxIssuedAtSkewSeconds after
// `now`. The claims are still signed verbatim: this only refuses. kInvalidArgument with a message
// naming the claim.
Status CheckSignClaims(std::string_view claims_b64url, int64_t now, int64_t max_lifetime_seconds);

}  // namespace kubehsm::service
