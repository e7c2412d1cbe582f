// RFC 7512 "pkcs11:" URIs: parsing and formatting. Selects a token (token, manufacturer, serial,
// model, slot-id, ...) and objects (object = CKA_LABEL, id = CKA_ID, type), plus the query
// attributes module-path, module-name and pin-source. pin-value is refused: a PIN must not travel
// in a URI that could end up in argv, a log or a shell history.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace kubehsm::hsm {

struct Pkcs11Uri {
  // Token and slot selection (RFC 7512 §2.3).
  std::optional<std::string> token;         // CK_TOKEN_INFO.label
  std::optional<std::string> manufacturer;  // CK_TOKEN_INFO.manufacturerID
  std::optional<std::string> serial;        // CK_TOKEN_INFO.serialNumber
  std::optional<std::string> model;         // CK_TOKEN_INFO.model
  std::optional<std::string> slot_description;
  std::optional<std::string> slot_manufacturer;
  std::optional<unsigned long> slot_id;
  std::optional<std::string> library_manufacturer;
  std::optional<std::string> library_description;
  std::optional<std::string> library_version;
  // Object selection.
  std::optional<std::string> object;  // CKA_LABEL
  std::optional<std::string> id;      // CKA_ID, raw bytes
  std::optional<std::string> type;    // "private", "public", "cert", "secret-key", "data"
  // Query attributes.
  std::optional<std::string> module_path;
  std::optional<std::string> module_name;
  std::optional<std::string> pin_source;

  // Parses `text`. Fails (kInvalidArgument, naming the attribute) on a missing "pkcs11:" scheme,
  // bad percent-encoding, an unknown or repeated attribute, an invalid type or slot-id, or a
  // pin-value attribute. Vendor attributes ("x-...") are ignored.
  static Result<Pkcs11Uri> Parse(std::string_view text);

  // Formats the URI with every set attribute, percent-encoding as RFC 7512 requires (the id is
  // always fully percent-encoded).
  std::string ToString() const;

  // True when any token-selecting attribute is set.
  bool SelectsToken() const;
};

// Percent-encodes every byte outside RFC 3986 unreserved characters (and ':' '@' '!' '$' '\'' '('
// ')' '*' '+' ',' '=' allowed in a path attribute value), or every byte when `all` is true.
std::string PercentEncode(std::string_view raw, bool all = false);

}  // namespace kubehsm::hsm
