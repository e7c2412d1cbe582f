#include "common/base64.h"

#include <array>
#include <cstdint>

namespace kubehsm {
namespace {

constexpr std::string_view kStandardChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kUrlChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string_view Alphabet(Base64Alphabet a) { return a == Base64Alphabet::kUrl ? kUrlChars : kStandardChars; }

// 256-entry tables: a byte's 6-bit value, or -1 when it is not in the alphabet.
using DecodeTable = std::array<int8_t, 256>;

constexpr DecodeTable MakeTable(std::string_view chars) {
  DecodeTable t{};
  for (auto& v : t) v = -1;
  for (std::size_t i = 0; i < chars.size(); ++i) t[static_cast<uint8_t>(chars[i])] = static_cast<int8_t>(i);
  return t;
}

constexpr DecodeTable kStandardTable = MakeTable(kStandardChars);
constexpr DecodeTable kUrlTable = MakeTable(kUrlChars);

std::string Where(std::size_t pos) { return "base64: invalid input at offset " + std::to_string(pos); }

}  // namespace

std::string Base64Encode(std::string_view data, Base64Options options) {
  const std::string_view chars = Alphabet(options.alphabet);
  const bool pad = options.padding == Base64Padding::kPadded;
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const uint32_t v = (uint32_t{static_cast<uint8_t>(data[i])} << 16) |
                       (uint32_t{static_cast<uint8_t>(data[i + 1])} << 8) | uint32_t{static_cast<uint8_t>(data[i + 2])};
    out += chars[(v >> 18) & 63];
    out += chars[(v >> 12) & 63];
    out += chars[(v >> 6) & 63];
    out += chars[v & 63];
  }
  const std::size_t rest = data.size() - i;
  if (rest == 1) {
    const uint32_t v = uint32_t{static_cast<uint8_t>(data[i])} << 16;
    out += chars[(v >> 18) & 63];
    out += chars[(v >> 12) & 63];
    if (pad) out += "==";
  } else if (rest == 2) {
    const uint32_t v = (uint32_t{static_cast<uint8_t>(data[i])} << 16) | (uint32_t{static_cast<uint8_t>(data[i + 1])} << 8);
    out += chars[(v >> 18) & 63];
    out += chars[(v >> 12) & 63];
    out += chars[(v >> 6) & 63];
    if (pad) out += '=';
  }
  return out;
}

Result<std::string> Base64Decode(std::string_view text, Base64Options options) {
  std::size_t body = text.size();
  if (options.padding == Base64Padding::kPadded) {
    if (text.size() % 4 != 0) {
      return InvalidArgument("base64: length " + std::to_string(text.size()) + " is not a multiple of 4");
    }
    std::size_t pads = 0;
    while (pads < 2 && body > 0 && text[body - 1] == '=') {
      --body;
      ++pads;
    }
  }
  // In the unpadded form a final group of one character cannot encode a whole byte.
  if (body % 4 == 1) return InvalidArgument("base64: impossible length " + std::to_string(text.size()));

  const DecodeTable& table = options.alphabet == Base64Alphabet::kUrl ? kUrlTable : kStandardTable;
  const auto value = [&](std::size_t i) { return table[static_cast<uint8_t>(text[i])]; };
  std::string out(body / 4 * 3 + (body % 4 == 0 ? 0 : body % 4 - 1), '\0');
  std::size_t o = 0;
  std::size_t i = 0;
  // Whole groups of four characters, three bytes each.
  for (; i + 4 <= body; i += 4) {
    const int a = value(i), b = value(i + 1), c = value(i + 2), d = value(i + 3);
    if ((a | b | c | d) < 0) {
      for (std::size_t k = i;; ++k) {
        if (value(k) < 0) return InvalidArgument(Where(k));
      }
    }
    const uint32_t v = (uint32_t(a) << 18) | (uint32_t(b) << 12) | (uint32_t(c) << 6) | uint32_t(d);
    out[o++] = static_cast<char>(v >> 16);
    out[o++] = static_cast<char>((v >> 8) & 0xFF);
    out[o++] = static_cast<char>(v & 0xFF);
  }
  // The final 2 or 3 characters: 1 or 2 bytes and 4 or 2 leftover bits.
  uint32_t acc = 0;
  int bits = 0;
  for (; i < body; ++i) {
    const int v = value(i);
    if (v < 0) return InvalidArgument(Where(i));
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  // Leftover bits (2 or 4) must be zero in a canonical encoding (RFC 4648 §3.5).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
    return InvalidArgument("base64: non-zero trailing bits at offset " + std::to_string(body - 1));
  }
  // With padding, the number of '=' must match the final group exactly ("QQ=" + "=" only).
  if (options.padding == Base64Padding::kPadded) {
    const std::size_t pads = text.size() - body;
    const std::size_t expected = body % 4 == 0 ? 0 : 4 - body % 4;
    if (pads != expected) return InvalidArgument(Where(body));
  }
  return out;
}

}  // namespace kubehsm
