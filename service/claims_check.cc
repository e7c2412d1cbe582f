#include "service/claims_check.h"

#include <string>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "signer/jwt/claims.h"

namespace kubehsm::service {

Status CheckSignClaims(std::string_view claims_b64url, int64_t now, int64_t max_lifetime_seconds) {
  if (claims_b64url.empty()) return InvalidArgument("claims are empty");
  // Before decoding: 4 base64url characters carry 3 bytes.
  if (claims_b64url.size() > (jwt::kMaxClaimsBytes + 2) / 3 * 4) {
    return InvalidArgument("claims are " + std::to_string(claims_b64url.size()) +
                           " base64url characters, over the limit of " + std::to_string(jwt::kMaxClaimsBytes) +
                           " decoded bytes");
  }
  auto decoded = Base64UrlDecode(claims_b64url);
  if (!decoded.ok()) return InvalidArgument("claims are not unpadded base64url: " + decoded.status().message());
  // Strict parse (size, depth, duplicates, UTF-8) and the bound-token rules; the normalized text
  // is not used: kube-apiserver assembles the token from the claims it sent.
  auto normalized = jwt::NormalizeClaimsDocument(*decoded, now, /*jti_if_missing=*/"");
  if (!normalized.ok()) {
    std::string message = normalized.status().message();
    if (message.find("not a JSON object") != std::string::npos) message += " (encoded twice?)";
    return InvalidArgument(message);
  }
  // NormalizeClaimsDocument has accepted the text, so this parse cannot fail or meet duplicates.
  const auto claims = nlohmann::json::parse(*decoded, nullptr, /*allow_exceptions=*/false);
  if (claims.is_discarded() || !claims.is_object()) return InvalidArgument("claims do not decode to a JSON object");
  // NormalizeClaimsDocument supplies iat and nbf when absent; kube-apiserver always sends them.
  for (const char* required : {"iat", "nbf"}) {
    if (!claims.contains(required)) {
      return InvalidArgument(std::string("claims: missing required claim \"") + required + "\"");
    }
  }
  // Integers here (checked above), within int64.
  const int64_t exp = claims["exp"].get<int64_t>();
  const int64_t iat = claims["iat"].get<int64_t>();
  // exp > iat was checked, so the difference is exact in uint64.
  const uint64_t lifetime = static_cast<uint64_t>(exp) - static_cast<uint64_t>(iat);
  if (lifetime > static_cast<uint64_t>(max_lifetime_seconds)) {
    return InvalidArgument("claims: lifetime exp - iat = " + std::to_string(lifetime) + " s exceeds this signer's maximum of " +
                           std::to_string(max_lifetime_seconds) + " s (Metadata max_token_expiration_seconds)");
  }
  if (iat > now && iat - now > kMaxIssuedAtSkewSeconds) {
    return InvalidArgument("claims: iat is " + std::to_string(iat - now) + " s in the future (at most " +
                           std::to_string(kMaxIssuedAtSkewSeconds) + " s allowed)");
  }
  return OkStatus();
}

}  // namespace kubehsm::service
