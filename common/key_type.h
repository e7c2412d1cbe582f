// The key types kubehsm creates and signs with, shared by the hsm and signer layers.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace kubehsm {

enum class KeyType { kRsa2048, kRsa3072, kRsa4096, kEcP256, kEcP384, kEcP521 };

// "rsa-2048", "rsa-3072", "rsa-4096", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521".
std::string_view KeyTypeName(KeyType type);

// Every name KeyTypeName gives, comma-separated ("rsa-2048, rsa-3072, ..."), for error messages.
std::string KeyTypeNames();

// Parses the names above (case-insensitive); also accepts kubeadm's encryptionAlgorithm spelling
// ("RSA-2048", "ECDSA-P256", ...). Returns nullopt for anything else.
std::optional<KeyType> ParseKeyType(std::string_view name);

inline bool IsRsa(KeyType t) { return t == KeyType::kRsa2048 || t == KeyType::kRsa3072 || t == KeyType::kRsa4096; }

// The RSA type with `bits` modulus bits (2048, 3072, 4096), nullopt for other sizes.
std::optional<KeyType> RsaKeyTypeFromBits(std::size_t bits);

// The EC type for an OpenSSL group name ("prime256v1"/"P-256", "secp384r1"/"P-384",
// "secp521r1"/"P-521"), nullopt for other curves.
std::optional<KeyType> EcKeyTypeFromGroupName(std::string_view group);

// RSA modulus bits (0 for EC).
int RsaBits(KeyType t);

// OpenSSL group name for EC types ("P-256", "P-384", "P-521"); empty for RSA.
std::string_view EcGroupName(KeyType t);

// The digest kubehsm and Go's crypto/x509 pair with the key: SHA-256 for RSA and P-256, SHA-384
// for P-384, SHA-512 for P-521.
std::string_view DefaultDigestName(KeyType t);

}  // namespace kubehsm
