#include "hsm/uri.h"

#include <charconv>
#include <cstdio>
#include <set>
#include <utility>

namespace kubehsm::hsm {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> PercentDecode(std::string_view in, std::string_view attr) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%') {
      if (i + 2 >= in.size()) {
        return InvalidArgument("PKCS#11 URI attribute '" + std::string(attr) + "': truncated %-escape");
      }
      int hi = HexValue(in[i + 1]), lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) {
        return InvalidArgument("PKCS#11 URI attribute '" + std::string(attr) + "': bad %-escape");
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

bool IsUnreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

bool IsPathExtra(unsigned char c) {
  return c == ':' || c == '[' || c == ']' || c == '@' || c == '!' || c == '$' || c == '\'' || c == '(' || c == ')' ||
         c == '*' || c == '+' || c == ',' || c == '=' || c == '&';
}

}  // namespace

std::string PercentEncode(std::string_view raw, bool all) {
  std::string out;
  for (unsigned char c : raw) {
    if (!all && (IsUnreserved(c) || IsPathExtra(c))) {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02x", c);
      out += buf;
    }
  }
  return out;
}

Result<Pkcs11Uri> Pkcs11Uri::Parse(std::string_view text) {
  constexpr std::string_view kScheme = "pkcs11:";
  if (text.size() < kScheme.size() || text.substr(0, kScheme.size()) != kScheme) {
    return InvalidArgument("not a PKCS#11 URI (must start with \"pkcs11:\")");
  }
  text.remove_prefix(kScheme.size());
  std::string_view path = text, query;
  if (auto q = text.find('?'); q != std::string_view::npos) {
    path = text.substr(0, q);
    query = text.substr(q + 1);
  }
  Pkcs11Uri uri;
  std::set<std::string> seen;

  auto split = [](std::string_view s, char sep, auto&& fn) -> Status {
    while (!s.empty()) {
      auto pos = s.find(sep);
      std::string_view part = s.substr(0, pos);
      KH_RETURN_IF_ERROR(fn(part));
      if (pos == std::string_view::npos) break;
      s.remove_prefix(pos + 1);
    }
    return OkStatus();
  };

  auto handle = [&](std::string_view part, bool is_query) -> Status {
    if (part.empty()) return OkStatus();
    auto eq = part.find('=');
    if (eq == std::string_view::npos) {
      return InvalidArgument("PKCS#11 URI attribute '" + std::string(part.substr(0, 40)) + "' has no '='");
    }
    std::string name(part.substr(0, eq));
    if (name == "pin-value") {
      return InvalidArgument(
          "PKCS#11 URI attribute 'pin-value' is refused: give the PIN with --pin-source (env:, file:, fd: or prompt)");
    }
    KH_ASSIGN_OR_RETURN(std::string value, PercentDecode(part.substr(eq + 1), name));
    if (name.rfind("x-", 0) == 0) return OkStatus();
    if (!seen.insert(name).second) return InvalidArgument("PKCS#11 URI attribute '" + name + "' is repeated");
    auto set = [&](std::optional<std::string>& field) -> Status {
      field = std::move(value);
      return OkStatus();
    };
    if (!is_query) {
      if (name == "token") return set(uri.token);
      if (name == "manufacturer") return set(uri.manufacturer);
      if (name == "serial") return set(uri.serial);
      if (name == "model") return set(uri.model);
      if (name == "slot-description") return set(uri.slot_description);
      if (name == "slot-manufacturer") return set(uri.slot_manufacturer);
      if (name == "library-manufacturer") return set(uri.library_manufacturer);
      if (name == "library-description") return set(uri.library_description);
      if (name == "library-version") return set(uri.library_version);
      if (name == "object") return set(uri.object);
      if (name == "id") return set(uri.id);
      if (name == "type") {
        static const std::set<std::string> kTypes = {"private", "public", "cert", "secret-key", "data"};
        if (kTypes.count(value) == 0) {
          return InvalidArgument("PKCS#11 URI attribute 'type' must be private, public, cert, secret-key or data");
        }
        return set(uri.type);
      }
      if (name == "slot-id") {
        unsigned long id = 0;
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), id);
        if (ec != std::errc() || p != value.data() + value.size() || value.empty()) {
          return InvalidArgument("PKCS#11 URI attribute 'slot-id' must be a decimal number");
        }
        uri.slot_id = id;
        return OkStatus();
      }
    } else {
      if (name == "module-path") return set(uri.module_path);
      if (name == "module-name") return set(uri.module_name);
      if (name == "pin-source") return set(uri.pin_source);
    }
    return InvalidArgument("unknown PKCS#11 URI " + std::string(is_query ? "query" : "path") + " attribute '" +
                           name.substr(0, 40) + "'");
  };

  KH_RETURN_IF_ERROR(split(path, ';', [&](std::string_view p) { return handle(p, false); }));
  KH_RETURN_IF_ERROR(split(query, '&', [&](std::string_view p) { return handle(p, true); }));
  return uri;
}

std::string Pkcs11Uri::ToString() const {
  std::string path, query;
  auto add = [](std::string& out, char sep, const char* name, const std::optional<std::string>& v, bool all = false) {
    if (!v) return;
    if (!out.empty()) out.push_back(sep);
    out += name;
    out += '=';
    // '&' is a path character but the query separator (RFC 7512 §2.3 pk11-pchar vs pk11-qchar).
    for (char c : PercentEncode(*v, all)) {
      if (sep == '&' && c == '&') {
        out += "%26";
      } else {
        out.push_back(c);
      }
    }
  };
  add(path, ';', "library-manufacturer", library_manufacturer);
  add(path, ';', "library-description", library_description);
  add(path, ';', "library-version", library_version);
  add(path, ';', "slot-manufacturer", slot_manufacturer);
  add(path, ';', "slot-description", slot_description);
  if (slot_id) add(path, ';', "slot-id", std::to_string(*slot_id));
  add(path, ';', "manufacturer", manufacturer);
  add(path, ';', "model", model);
  add(path, ';', "serial", serial);
  add(path, ';', "token", token);
  add(path, ';', "object", object);
  add(path, ';', "id", id, /*all=*/true);
  add(path, ';', "type", type);
  add(query, '&', "module-name", module_name);
  add(query, '&', "module-path", module_path);
  add(query, '&', "pin-source", pin_source);
  std::string out = "pkcs11:" + path;
  if (!query.empty()) out += "?" + query;
  return out;
}

bool Pkcs11Uri::SelectsToken() const {
  return token || manufacturer || serial || model || slot_id || slot_description || slot_manufacturer;
}

}  // namespace kubehsm::hsm
