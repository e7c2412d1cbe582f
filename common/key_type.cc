#include "common/key_type.h"

#include <algorithm>
#include <cctype>

namespace kubehsm {

std::string_view KeyTypeName(KeyType type) {
  switch (type) {
    case KeyType::kRsa2048:
      return "rsa-2048";
    case KeyType::kRsa3072:
      return "rsa-3072";
    case KeyType::kRsa4096:
      return "rsa-4096";
    case KeyType::kEcP256:
      return "ecdsa-p256";
    case KeyType::kEcP384:
      return "ecdsa-p384";
    case KeyType::kEcP521:
      return "ecdsa-p521";
  }
  return "unknown";
}

std::string KeyTypeNames() {
  std::string out;
  for (KeyType t : {KeyType::kRsa2048, KeyType::kRsa3072, KeyType::kRsa4096, KeyType::kEcP256, KeyType::kEcP384,
                    KeyType::kEcP521}) {
    if (!out.empty()) out += ", ";
    out += KeyTypeName(t);
  }
  return out;
}

std::optional<KeyType> ParseKeyType(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (KeyType t : {KeyType::kRsa2048, KeyType::kRsa3072, KeyType::kRsa4096, KeyType::kEcP256, KeyType::kEcP384,
                    KeyType::kEcP521}) {
    if (lower == KeyTypeName(t)) return t;
  }
  return std::nullopt;
}

std::optional<KeyType> RsaKeyTypeFromBits(std::size_t bits) {
  switch (bits) {
    case 2048:
      return KeyType::kRsa2048;
    case 3072:
      return KeyType::kRsa3072;
    case 4096:
      return KeyType::kRsa4096;
    default:
      return std::nullopt;
  }
}

std::optional<KeyType> EcKeyTypeFromGroupName(std::string_view g) {
  if (g == "prime256v1" || g == "P-256") return KeyType::kEcP256;
  if (g == "secp384r1" || g == "P-384") return KeyType::kEcP384;
  if (g == "secp521r1" || g == "P-521") return KeyType::kEcP521;
  return std::nullopt;
}

int RsaBits(KeyType t) {
  switch (t) {
    case KeyType::kRsa2048:
      return 2048;
    case KeyType::kRsa3072:
      return 3072;
    case KeyType::kRsa4096:
      return 4096;
    default:
      return 0;
  }
}

std::string_view EcGroupName(KeyType t) {
  switch (t) {
    case KeyType::kEcP256:
      return "P-256";
    case KeyType::kEcP384:
      return "P-384";
    case KeyType::kEcP521:
      return "P-521";
    default:
      return "";
  }
}

std::string_view DefaultDigestName(KeyType t) {
  switch (t) {
    case KeyType::kEcP384:
      return "SHA384";
    case KeyType::kEcP521:
      return "SHA512";
    default:
      return "SHA256";
  }
}

}  // namespace kubehsm
