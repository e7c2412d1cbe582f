// Private to signer/jwt: strict JSON parsing for untrusted token parts and claims files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace kubehsm::jwt::internal {

// Parses `text` as one JSON object. kInvalidArgument ("<what>: ...") when it is not valid JSON
// (including invalid UTF-8 and trailing data), not an object, nests deeper than 32 levels, or has a
// duplicate member name in any object (Go's decoder keeps the last duplicate, others the first:
// refusing removes the ambiguity). Never throws.
Result<nlohmann::json> ParseJsonObject(std::string_view text, std::string_view what);

// Serializes compactly with members sorted by name at every level (go-jose's payload encoding).
// kInvalidArgument if a string is not valid UTF-8. Never throws.
Result<std::string> DumpCompact(const nlohmann::json& value);

// A JSON number as an integral NumericDate (RFC 7519 §2). Fractional values are truncated, as
// go-jose does; nullopt for non-numbers and values outside int64.
std::optional<int64_t> AsNumericDate(const nlohmann::json& value);

}  // namespace kubehsm::jwt::internal
