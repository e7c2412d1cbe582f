// hsm/uri.h: RFC 7512 PKCS#11 URIs from flags and config files.
// Invariants: a parsed URI formats to a URI that parses back to the same fields, and formatting is
// then stable; pin-value is never accepted; only "pkcs11:" URIs parse; failures are
// kInvalidArgument; PercentEncode(x, all=true) emits only "%hh" triplets.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "fuzz/fuzz_util.h"
#include "hsm/uri.h"

namespace {

using kubehsm::hsm::Pkcs11Uri;

bool SameFields(const Pkcs11Uri& a, const Pkcs11Uri& b) {
  return a.token == b.token && a.manufacturer == b.manufacturer && a.serial == b.serial && a.model == b.model &&
         a.slot_description == b.slot_description && a.slot_manufacturer == b.slot_manufacturer &&
         a.slot_id == b.slot_id && a.library_manufacturer == b.library_manufacturer &&
         a.library_description == b.library_description && a.library_version == b.library_version &&
         a.object == b.object && a.id == b.id && a.type == b.type && a.module_path == b.module_path &&
         a.module_name == b.module_name && a.pin_source == b.pin_source;
}

// True when any attribute of `text` (path parts split at ';', query parts at '&') is named
// pin-value.
bool HasPinValue(std::string_view text) {
  const std::size_t q = text.find('?');
  for (auto [part, sep] : {std::pair{text.substr(0, q), ';'},
                           std::pair{q == std::string_view::npos ? std::string_view() : text.substr(q + 1), '&'}}) {
    while (!part.empty()) {
      const std::size_t end = part.find(sep);
      const std::string_view attr = part.substr(0, end);
      if (attr.substr(0, attr.find('=')) == "pin-value" ||
          attr.substr(0, attr.find('=')) == "pkcs11:pin-value") {
        return true;
      }
      if (end == std::string_view::npos) break;
      part.remove_prefix(end + 1);
    }
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = kubehsm::fuzz::AsText(data, size);

  const std::string all = kubehsm::hsm::PercentEncode(text, /*all=*/true);
  KH_FUZZ_CHECK(all.size() == 3 * text.size(), "PercentEncode(all) must emit one %hh per byte");

  auto uri = Pkcs11Uri::Parse(text);
  if (!uri.ok()) {
    KH_FUZZ_CHECK(uri.status().code() == kubehsm::StatusCode::kInvalidArgument, uri.status().message());
    return 0;
  }
  KH_FUZZ_CHECK(text.substr(0, 7) == "pkcs11:", "parsed a URI without the pkcs11: scheme");
  KH_FUZZ_CHECK(!HasPinValue(text), "accepted a pin-value attribute");

  const std::string formatted = uri->ToString();
  auto again = Pkcs11Uri::Parse(formatted);
  KH_FUZZ_CHECK(again.ok(), "ToString() output does not parse: " + formatted + ": " + again.status().message());
  KH_FUZZ_CHECK(SameFields(*uri, *again), "parse(ToString(parse(x))) != parse(x): " + formatted);
  KH_FUZZ_CHECK(again->ToString() == formatted, "ToString is not stable: " + formatted);
  return 0;
}
