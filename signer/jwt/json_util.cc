#include "signer/jwt/json_util.h"

#include <cmath>
#include <utility>
#include <vector>

namespace kubehsm::jwt::internal {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxDepth = 32;

// Builds the DOM from nlohmann's SAX events, as nlohmann's own DOM parser does, plus the two
// extra refusals: a container opened at depth >= kMaxDepth (the outermost value is at depth 0)
// and a member name that already exists in its object. Both are detected at the same event the
// former parser callback saw (start of the container, the key), so the first problem in document
// order is the one reported, exactly as before. The member is inserted when its key arrives (a
// null placeholder that the value then replaces): one map lookup per member does both the
// duplicate check and the insertion.
class DomBuilder final : public nlohmann::json_sax<json> {
 public:
  explicit DomBuilder(json& root) : root_(root) { stack_.reserve(8); }

  // Why parsing stopped early: "nested too deeply", "duplicate member \"x\"", or the parse
  // error's what() (then syntax_error()); empty when it did not.
  std::string& error() { return error_; }
  bool syntax_error() const { return syntax_error_; }

  bool null() override { return Put(nullptr); }
  bool boolean(bool val) override { return Put(val); }
  bool number_integer(number_integer_t val) override { return Put(val); }
  bool number_unsigned(number_unsigned_t val) override { return Put(val); }
  bool number_float(number_float_t val, const string_t& /*text*/) override { return Put(val); }
  bool string(string_t& val) override { return Put(val); }
  bool binary(binary_t& val) override { return Put(std::move(val)); }  // never for JSON text

  bool start_object(std::size_t /*elements*/) override { return Open(json::value_t::object); }
  bool start_array(std::size_t /*elements*/) override { return Open(json::value_t::array); }
  bool end_object() override { return Close(); }
  bool end_array() override { return Close(); }

  bool key(string_t& val) override {
    auto& object = *stack_.back()->get_ptr<json::object_t*>();
    const auto [it, inserted] = object.try_emplace(val);
    if (!inserted) {
      error_ = "duplicate member \"" + val + "\"";
      return false;
    }
    member_ = &it->second;
    return true;
  }

  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& ex) override {
    syntax_error_ = true;
    error_ = ex.what();
    return false;
  }

 private:
  // The slot for the next value: the root, a new array element, or the member its key inserted.
  json* Slot() {
    if (stack_.empty()) return &root_;
    json* top = stack_.back();
    if (top->is_array()) {
      auto& array = *top->get_ptr<json::array_t*>();
      array.emplace_back();
      return &array.back();
    }
    return member_;
  }

  template <typename V>
  bool Put(V&& v) {
    *Slot() = json(std::forward<V>(v));
    return true;
  }

  bool Open(json::value_t type) {
    if (stack_.size() >= kMaxDepth) {
      error_ = "nested too deeply";
      return false;
    }
    json* slot = Slot();
    *slot = json(type);
    stack_.push_back(slot);
    return true;
  }

  bool Close() {
    stack_.pop_back();
    return true;
  }

  json& root_;
  std::vector<json*> stack_;  // open containers, outermost first
  json* member_ = nullptr;    // the member inserted by the last key()
  std::string error_;
  bool syntax_error_ = false;
};

}  // namespace

Result<nlohmann::json> ParseJsonObject(std::string_view text, std::string_view what) {
  json value;
  DomBuilder builder(value);
  if (!json::sax_parse(text.begin(), text.end(), &builder, json::input_format_t::json, /*strict=*/true,
                       /*ignore_comments=*/false)) {
    std::string& msg = builder.error();
    if (!builder.syntax_error()) return InvalidArgument(std::string(what) + ": " + msg);
    // msg is "[json.exception.parse_error.101] parse error at line 1, column 3: ..."; keep only the
    // human part after the bracketed id.
    if (const auto pos = msg.find("] "); pos != std::string::npos) msg.erase(0, pos + 2);
    return InvalidArgument(std::string(what) + ": invalid JSON: " + msg);
  }
  if (!value.is_object()) return InvalidArgument(std::string(what) + ": not a JSON object");
  return value;
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
