#include "signer/jwt/json_util.h"

#include <cmath>
#include <set>
#include <vector>

namespace kubehsm::jwt::internal {
namespace {

constexpr int kMaxDepth = 32;

// Thrown by the parser callback to stop parsing; never leaves this file.
struct StopParse {
  std::string reason;
};

}  // namespace

Result<nlohmann::json> ParseJsonObject(std::string_view text, std::string_view what) {
  std::vector<std::set<std::string>> seen;  // member names per open object
  const auto cb = [&seen](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) -> bool {
    using E = nlohmann::json::parse_event_t;
    switch (event) {
      case E::object_start:
        if (depth >= kMaxDepth) throw StopParse{"nested too deeply"};
        seen.emplace_back();
        break;
      case E::array_start:
        if (depth >= kMaxDepth) throw StopParse{"nested too deeply"};
        break;
      case E::object_end:
        if (!seen.empty()) seen.pop_back();
        break;
      case E::key:
        if (!seen.empty() && !seen.back().insert(parsed.get<std::string>()).second) {
          throw StopParse{"duplicate member \"" + parsed.get<std::string>() + "\""};
        }
        break;
      default:
        break;
    }
    return true;
  };
  try {
    nlohmann::json value = nlohmann::json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/true,
                                                 /*ignore_comments=*/false);
    if (!value.is_object()) return InvalidArgument(std::string(what) + ": not a JSON object");
    return value;
  } catch (const StopParse& stop) {
    return InvalidArgument(std::string(what) + ": " + stop.reason);
  } catch (const nlohmann::json::exception& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 3: ..."; keep
    // only the human part after the bracketed id.
    std::string msg = e.what();
    if (const auto pos = msg.find("] "); pos != std::string::npos) msg = msg.substr(pos + 2);
    return InvalidArgument(std::string(what) + ": invalid JSON: " + msg);
  }
}

Result<std::string> DumpCompact(const nlohmann::json& value) {
  try {
    return value.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::strict);
  } catch (const nlohmann::json::exception&) {
    return InvalidArgument("a string is not valid UTF-8");
  }
}

std::optional<int64_t> AsNumericDate(const nlohmann::json& value) {
  if (value.is_number_integer() && !value.is_number_unsigned()) return value.get<int64_t>();
  if (value.is_number_unsigned()) {
    const auto u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (value.is_number_float()) {
    const double d = value.get<double>();
    if (!std::isfinite(d) || d >= 9.2e18 || d <= -9.2e18) return std::nullopt;
    return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

}  // namespace kubehsm::jwt::internal
