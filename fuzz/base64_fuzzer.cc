// common/base64.h: strict decoding of untrusted text in all four alphabet/padding forms.
// Invariants: encode(x) decodes back to x in every form; whatever decodes re-encodes to exactly
// the input (one accepted encoding per byte string, RFC 4648 §3.5); decoded size matches the
// length rule; nothing outside the alphabet is ever accepted.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/base64.h"
#include "fuzz/fuzz_util.h"

namespace {

using kubehsm::Base64Alphabet;
using kubehsm::Base64Decode;
using kubehsm::Base64Encode;
using kubehsm::Base64Options;
using kubehsm::Base64Padding;

constexpr Base64Options kForms[] = {
    {Base64Alphabet::kStandard, Base64Padding::kPadded},
    {Base64Alphabet::kStandard, Base64Padding::kUnpadded},
    {Base64Alphabet::kUrl, Base64Padding::kPadded},
    {Base64Alphabet::kUrl, Base64Padding::kUnpadded},
};

bool InAlphabet(char c, Base64Alphabet a) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
  return a == Base64Alphabet::kUrl ? (c == '-' || c == '_') : (c == '+' || c == '/');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = kubehsm::fuzz::AsText(data, size);
  for (const Base64Options& form : kForms) {
    // Round trip of arbitrary bytes.
    const std::string encoded = Base64Encode(input, form);
    auto back = Base64Decode(encoded, form);
    KH_FUZZ_CHECK(back.ok(), "own encoding refused: " + back.status().message());
    KH_FUZZ_CHECK(*back == input, "decode(encode(x)) != x");

    // The input as untrusted text.
    auto decoded = Base64Decode(input, form);
    if (!decoded.ok()) {
      KH_FUZZ_CHECK(decoded.status().code() == kubehsm::StatusCode::kInvalidArgument, decoded.status().message());
      continue;
    }
    KH_FUZZ_CHECK(Base64Encode(*decoded, form) == input, "accepted a non-canonical encoding");
    KH_FUZZ_CHECK(decoded->size() == input.size() / 4 * 3 + (input.size() % 4 == 0 ? 0 : input.size() % 4 - 1) -
                                         (form.padding == Base64Padding::kPadded
                                              ? (input.size() >= 1 && input.back() == '=') +
                                                    (input.size() >= 2 && input[input.size() - 2] == '=')
                                              : 0),
                  "decoded length does not follow the length rule");
    for (char c : input) {
      KH_FUZZ_CHECK(InAlphabet(c, form.alphabet) || (c == '=' && form.padding == Base64Padding::kPadded),
                    "accepted a character outside the alphabet");
    }
  }
  return 0;
}
