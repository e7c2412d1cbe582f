#include "signer/jwt/kid.h"

#include <openssl/sha.h>
#include <openssl/x509.h>

#include "common/openssl_error.h"
#include "common/base64.h"

namespace kubehsm::jwt {

Result<std::string> KidFromSpki(std::string_view spki_der) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(spki_der.data(), spki_der.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    return OpenSslError("SHA-256 of the public key");
  }
  return Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(digest), len));
}

Result<std::string> KidOf(const EVP_PKEY* key) {
  if (key == nullptr) return InvalidArgument("no key");
  // Two-pass i2d into our own buffer, so no OpenSSL allocation needs freeing here.
  const int len = i2d_PUBKEY(key, nullptr);
  if (len <= 0) return OpenSslError("encoding the public key as SubjectPublicKeyInfo");
  std::string spki(static_cast<size_t>(len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(spki.data());
  if (i2d_PUBKEY(key, &p) != len) return OpenSslError("encoding the public key as SubjectPublicKeyInfo");
  return KidFromSpki(spki);
}

bool LooksLikeDerivedKid(std::string_view kid) {
  if (kid.size() != 43) return false;
  for (char c : kid) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace kubehsm::jwt
