// Base64 (RFC 4648 §4) and base64url (RFC 4648 §5) encoding with strict decoding.
//
// Strict means: only the alphabet's 64 characters (plus '=' where padding is used) are accepted,
// no whitespace or line breaks, the length must be consistent with the padding rule, and the
// unused low bits of the last character must be zero (RFC 4648 §3.5 "canonical encoding"), so
// every byte string has exactly one accepted encoding.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace kubehsm {

enum class Base64Alphabet {
  kStandard,  // A-Z a-z 0-9 + /   (RFC 4648 §4)
  kUrl,       // A-Z a-z 0-9 - _   (RFC 4648 §5, "base64url")
};

enum class Base64Padding {
  kPadded,    // output padded with '='; input must be padded to a multiple of 4
  kUnpadded,  // no '=' written; input must not contain '=' (JWS/JWT, RFC 7515 §2)
};

struct Base64Options {
  Base64Alphabet alphabet = Base64Alphabet::kStandard;
  Base64Padding padding = Base64Padding::kPadded;
};

// Encodes `data` (any bytes) on a single line with the given alphabet and padding. Never fails.
std::string Base64Encode(std::string_view data, Base64Options options);

// Decodes `text` strictly as described above. Fails with kInvalidArgument naming the first
// offending position (a character outside the alphabet, misplaced or missing '=', an impossible
// length, or non-zero trailing bits). An empty input decodes to an empty string.
Result<std::string> Base64Decode(std::string_view text, Base64Options options);

// Standard alphabet, padded: the form of kubeconfig `*-data` fields and PEM bodies.
inline std::string Base64Encode(std::string_view data) { return Base64Encode(data, {}); }
inline Result<std::string> Base64Decode(std::string_view text) { return Base64Decode(text, {}); }

// URL-safe alphabet without padding: the form JWS/JWT segments use (RFC 7515 §2).
inline std::string Base64UrlEncode(std::string_view data) {
  return Base64Encode(data, {Base64Alphabet::kUrl, Base64Padding::kUnpadded});
}
inline Result<std::string> Base64UrlDecode(std::string_view text) {
  return Base64Decode(text, {Base64Alphabet::kUrl, Base64Padding::kUnpadded});
}

}  // namespace kubehsm
