#include "signer/signing_key.h"

#include <utility>

#include <openssl/core_names.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "common/openssl_error.h"

namespace kubehsm::signer {

Result<KeyType> KeyTypeOf(const EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "RSA")) {
    const int bits = EVP_PKEY_get_bits(key);
    if (auto t = RsaKeyTypeFromBits(static_cast<std::size_t>(bits > 0 ? bits : 0))) return *t;
    return InvalidArgument("unsupported RSA key size " + std::to_string(bits) + " (2048, 3072 or 4096 bits)");
  }
  if (EVP_PKEY_is_a(key, "EC")) {
    char group[64] = {};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &len) != 1) {
      return OpenSslError(StatusCode::kInvalidArgument, "reading the EC key's curve");
    }
    const std::string g(group, len);
    if (auto t = EcKeyTypeFromGroupName(g)) return *t;
    return InvalidArgument("unsupported EC curve " + g + " (P-256, P-384 or P-521)");
  }
  return InvalidArgument("unsupported key algorithm (RSA or ECDSA only)");
}

Result<EvpPkeyPtr> ParseSpkiDer(std::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  EvpPkeyPtr key(d2i_PUBKEY_ex(nullptr, &p, static_cast<long>(der.size()), nullptr, "provider=default"));
  if (!key) return OpenSslError(StatusCode::kInvalidArgument, "parsing SubjectPublicKeyInfo");
  if (p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    return InvalidArgument("trailing bytes after SubjectPublicKeyInfo");
  }
  return key;
}

Result<SigningKey> SigningKey::Create(EvpPkeyPtr pkey, OSSL_LIB_CTX* libctx) {
  if (!pkey) return InvalidArgument("no key");
  KH_ASSIGN_OR_RETURN(KeyType type, KeyTypeOf(pkey.get()));
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(pkey.get(), &der);
  if (len <= 0) return OpenSslError("exporting the public key");
  std::string spki(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  KH_ASSIGN_OR_RETURN(EvpPkeyPtr pub, ParseSpkiDer(spki));
  return SigningKey(std::move(pkey), libctx, std::move(pub), std::move(spki), type);
}

Result<SigningKey> SigningKey::GenerateSoftware(KeyType type) {
  EvpPkeyPtr key;
  if (IsRsa(type)) {
    key.reset(EVP_RSA_gen(static_cast<unsigned>(RsaBits(type))));
  } else {
    key.reset(EVP_EC_gen(std::string(EcGroupName(type)).c_str()));
  }
  if (!key) return OpenSslError("generating a " + std::string(KeyTypeName(type)) + " key");
  return Create(std::move(key), nullptr);
}

Result<std::string> SigningKey::Sign(std::string_view data) const {
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) return OpenSslError("EVP_MD_CTX_new");
  const std::string md(DefaultDigestName(type_));
  if (EVP_DigestSignInit_ex(ctx.get(), nullptr, md.c_str(), libctx_, nullptr, pkey_.get(), nullptr) != 1) {
    return OpenSslError("EVP_DigestSignInit_ex");
  }
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(data.data());
  if (EVP_DigestSign(ctx.get(), nullptr, &len, in, data.size()) != 1) return OpenSslError("EVP_DigestSign (size)");
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in, data.size()) != 1) {
    return OpenSslError("EVP_DigestSign");
  }
  sig.resize(len);
  return sig;
}

Status VerifySignature(const EVP_PKEY* public_key, KeyType type, std::string_view data, std::string_view signature) {
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) return OpenSslError("EVP_MD_CTX_new");
  const std::string md(DefaultDigestName(type));
  if (EVP_DigestVerifyInit_ex(ctx.get(), nullptr, md.c_str(), nullptr, "provider=default",
                              const_cast<EVP_PKEY*>(public_key), nullptr) != 1) {
    return OpenSslError("EVP_DigestVerifyInit_ex");
  }
  const int rc = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                                  reinterpret_cast<const unsigned char*>(data.data()), data.size());
  DrainOpenSslErrors();
  if (rc != 1) return PermissionDenied("signature does not verify");
  return OkStatus();
}

}  // namespace kubehsm::signer
