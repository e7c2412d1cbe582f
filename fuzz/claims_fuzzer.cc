// signer/jwt/claims.h NormalizeClaimsDocument: a user-supplied claims file (`sa sign --claims`).
// Invariants: an accepted document normalizes to compact JSON that is itself accepted and
// normalizes to itself (idempotent, whatever the clock and jti), stays within kMaxClaimsBytes,
// has `aud` as a non-empty array, integer exp > iat, nbf, and a `sub` naming the
// kubernetes.io namespace and service account; refusals are kInvalidArgument.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz/fuzz_util.h"
#include "signer/jwt/claims.h"

namespace {

constexpr int64_t kNow = 1767225600;  // 2026-01-01T00:00:00Z
constexpr char kJti[] = "6f1c2a9e-8c4b-4e2d-9a57-0d3f1b2c3d4e";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using kubehsm::jwt::kMaxClaimsBytes;
  using kubehsm::jwt::NormalizeClaimsDocument;
  const std::string_view text = kubehsm::fuzz::AsText(data, size);

  auto normalized = NormalizeClaimsDocument(text, kNow, kJti);
  if (!normalized.ok()) {
    KH_FUZZ_CHECK(normalized.status().code() == kubehsm::StatusCode::kInvalidArgument, normalized.status().message());
    return 0;
  }
  KH_FUZZ_CHECK(normalized->size() <= kMaxClaimsBytes,
                "normalized claims are " + std::to_string(normalized->size()) + " bytes, over the limit");

  auto again = NormalizeClaimsDocument(*normalized, kNow + 12345, "another-jti");
  KH_FUZZ_CHECK(again.ok(), "normalized claims are refused: " + again.status().message());
  KH_FUZZ_CHECK(*again == *normalized, "normalization is not idempotent");

  const auto j = nlohmann::json::parse(*normalized, nullptr, /*allow_exceptions=*/false);
  KH_FUZZ_CHECK(j.is_object(), "normalized claims are not a JSON object");
  KH_FUZZ_CHECK(j.dump() == *normalized, "normalized claims are not compact and sorted");
  KH_FUZZ_CHECK(j["aud"].is_array() && !j["aud"].empty(), "aud is not a non-empty array");
  for (const char* t : {"exp", "iat", "nbf"}) KH_FUZZ_CHECK(j[t].is_number_integer(), t);
  KH_FUZZ_CHECK(j["jti"].is_string() && !j["jti"].get<std::string>().empty(), "no jti");
  const auto& k8s = j["kubernetes.io"];
  KH_FUZZ_CHECK(j["sub"] == "system:serviceaccount:" + k8s["namespace"].get<std::string>() + ":" +
                                k8s["serviceaccount"]["name"].get<std::string>(),
                "sub does not name kubernetes.io's service account");
  return 0;
}
