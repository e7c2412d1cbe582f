// hsm/pin.h PinSource::Parse: the --pin-source flag and RFC 7512's pin-source attribute.
// Invariants: parsing never reads a PIN (no side effects); a parsed source re-formatted as
// "<scheme>:<where>" parses to the same kind and place; fd sources name a non-negative number;
// refusals are kInvalidArgument and never echo the input beyond its scheme (a mistyped flag could
// hold the PIN itself); Describe() never fails.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_util.h"
#include "hsm/pin.h"

namespace {

using kubehsm::hsm::PinSource;

std::string Format(const PinSource& s) {
  switch (s.kind) {
    case PinSource::Kind::kEnv: return "env:" + s.where;
    case PinSource::Kind::kFile: return "file:" + s.where;
    case PinSource::Kind::kFd: return "fd:" + s.where;
    case PinSource::Kind::kPrompt: return "prompt";
  }
  return "";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = kubehsm::fuzz::AsText(data, size);
  auto source = PinSource::Parse(text);
  if (!source.ok()) {
    KH_FUZZ_CHECK(source.status().code() == kubehsm::StatusCode::kInvalidArgument, source.status().message());
    // Whatever follows the scheme may be a secret typed into the wrong flag: the message must not
    // depend on it. Replacing it by other bytes of the same length gives the same message (or a
    // valid source).
    const std::size_t colon = text.find(':');
    if (colon != std::string_view::npos && colon + 1 < text.size()) {
      const std::string other = std::string(text.substr(0, colon + 1)) + std::string(text.size() - colon - 1, 'Z');
      auto again = PinSource::Parse(other);
      KH_FUZZ_CHECK(again.ok() || again.status().message() == source.status().message(),
                    "error message depends on what follows the scheme: " + source.status().message());
    }
    return 0;
  }
  KH_FUZZ_CHECK(!source->Describe().empty(), "empty description");
  if (source->kind == PinSource::Kind::kPrompt) {
    KH_FUZZ_CHECK(source->where.empty(), "prompt with a place");
  } else {
    KH_FUZZ_CHECK(!source->where.empty(), "source without a place");
  }
  if (source->kind == PinSource::Kind::kFd) {
    KH_FUZZ_CHECK(source->where.find_first_not_of("0123456789") == std::string::npos,
                  "fd source that is not a decimal number: " + source->where);
  }
  auto again = PinSource::Parse(Format(*source));
  KH_FUZZ_CHECK(again.ok(), "re-formatted source does not parse: " + again.status().message());
  KH_FUZZ_CHECK(again->kind == source->kind && again->where == source->where, "re-formatted source changed");
  return 0;
}
