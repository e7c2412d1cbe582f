#include "signer/signing_key.h"

#include <cstddef>
#include <string>
#include <utility>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
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

Result<SigningKey> SigningKey::Create(EvpPkeyPtr pkey, OSSL_LIB_CTX* libctx, Options options) {
  if (!pkey) return InvalidArgument("no key");
  KH_ASSIGN_OR_RETURN(KeyType type, KeyTypeOf(pkey.get()));
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(pkey.get(), &der);
  if (len <= 0) return OpenSslError("exporting the public key");
  const OpenSslBufferPtr owned(der);
  std::string spki(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  KH_ASSIGN_OR_RETURN(EvpPkeyPtr pub, ParseSpkiDer(spki));
  return SigningKey(std::move(pkey), libctx, std::move(pub), std::move(spki), type, std::move(options));
}

std::size_t EcdsaRawSignatureSize(KeyType type) {
  switch (type) {
    case KeyType::kEcP256: return 64;
    case KeyType::kEcP384: return 96;
    case KeyType::kEcP521: return 132;
    default: return 0;
  }
}

Result<std::string> EcdsaDerToRaw(std::string_view der, KeyType type) {
  const std::size_t size = EcdsaRawSignatureSize(type);
  if (size == 0) return InvalidArgument("not an ECDSA key type");
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) return OpenSslError(StatusCode::kInvalidArgument, "parsing a DER ECDSA signature");
  if (p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    return InvalidArgument("trailing bytes after the DER ECDSA signature");
  }
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  const int half = static_cast<int>(size / 2);
  std::string raw(size, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  if (BN_bn2binpad(r, out, half) != half || BN_bn2binpad(s, out + half, half) != half) {
    DrainOpenSslErrors();
    return InvalidArgument("ECDSA signature value larger than the curve size");
  }
  return raw;
}

Result<std::string> EcdsaRawToDer(std::string_view raw, KeyType type) {
  const std::size_t size = EcdsaRawSignatureSize(type);
  if (size == 0) return InvalidArgument("not an ECDSA key type");
  if (raw.size() != size) {
    return InvalidArgument("invalid ECDSA signature size " + std::to_string(raw.size()) + " (want " +
                           std::to_string(size) + ")");
  }
  const auto* in = reinterpret_cast<const unsigned char*>(raw.data());
  const int half = static_cast<int>(size / 2);
  BigNumPtr r(BN_bin2bn(in, half, nullptr));
  BigNumPtr s(BN_bin2bn(in + half, half, nullptr));
  EcdsaSigPtr sig(ECDSA_SIG_new());
  if (!r || !s || !sig) return OpenSslError("building an ECDSA signature");
  if (ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return OpenSslError("ECDSA_SIG_set0");
  // ECDSA_SIG_set0 took ownership of r and s.
  (void)r.release();
  (void)s.release();
  const int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) return OpenSslError("encoding an ECDSA signature");
  std::string der(static_cast<std::size_t>(len), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_ECDSA_SIG(sig.get(), &out) != len) return OpenSslError("encoding an ECDSA signature");
  return der;
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
  KH_ASSIGN_OR_RETURN(std::string sig, SignUnchecked(data));
  // Never trust a signature a token returns: check it against the public half first.
  if (!VerifySignature(public_key_.get(), type_, data, sig).ok()) {
    return Internal("the " + std::string(KeyTypeName(type_)) + " signature returned by " +
                    (options_.origin.empty() ? std::string("the key") : options_.origin) +
                    " does not verify against its public key; the token signs incorrectly, nothing was signed");
  }
  return sig;
}

Result<std::string> SigningKey::SignUnchecked(std::string_view data) const {
  const std::string md(DefaultDigestName(type_));
  if (options_.digest_signer) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (EVP_Digest(data.data(), data.size(), digest, &digest_len, EVP_get_digestbyname(md.c_str()), nullptr) != 1) {
      return OpenSslError("hashing with " + md);
    }
    KH_ASSIGN_OR_RETURN(std::string raw,
                        options_.digest_signer(md, std::string_view(reinterpret_cast<char*>(digest), digest_len)));
    if (IsRsa(type_)) return raw;
    return EcdsaRawToDer(raw, type_);
  }
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) return OpenSslError("EVP_MD_CTX_new");
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
