// One RAII owner per OpenSSL type, and the only place in kubehsm that names their *_free functions.
// OpenSSL's ownership verbs hold: wrap what `new`/`get1`/`dup` return; never wrap `get0` results.
#pragma once

#include <memory>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/conf.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/store.h>
#include <openssl/ui.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace kubehsm {

template <auto FreeFn>
struct OpenSslDeleter {
  template <typename T>
  void operator()(T* p) const {
    FreeFn(p);
  }
};

template <typename T, auto FreeFn>
using SslPtr = std::unique_ptr<T, OpenSslDeleter<FreeFn>>;

using Asn1BitStringPtr = SslPtr<ASN1_BIT_STRING, ASN1_BIT_STRING_free>;
using Asn1IntegerPtr = SslPtr<ASN1_INTEGER, ASN1_INTEGER_free>;
using Asn1ObjectPtr = SslPtr<ASN1_OBJECT, ASN1_OBJECT_free>;
using Asn1OctetStringPtr = SslPtr<ASN1_OCTET_STRING, ASN1_OCTET_STRING_free>;
using Asn1TimePtr = SslPtr<ASN1_TIME, ASN1_TIME_free>;
using BasicConstraintsPtr = SslPtr<BASIC_CONSTRAINTS, BASIC_CONSTRAINTS_free>;
using AuthorityKeyIdPtr = SslPtr<AUTHORITY_KEYID, AUTHORITY_KEYID_free>;
using BigNumPtr = SslPtr<BIGNUM, BN_free>;
using BioPtr = SslPtr<BIO, BIO_free_all>;
using ConfPtr = SslPtr<CONF, NCONF_free>;
using EcdsaSigPtr = SslPtr<ECDSA_SIG, ECDSA_SIG_free>;
using EvpMdCtxPtr = SslPtr<EVP_MD_CTX, EVP_MD_CTX_free>;
using EvpMdPtr = SslPtr<EVP_MD, EVP_MD_free>;
using EvpPkeyCtxPtr = SslPtr<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using EvpPkeyPtr = SslPtr<EVP_PKEY, EVP_PKEY_free>;
using ExtendedKeyUsagePtr = SslPtr<EXTENDED_KEY_USAGE, EXTENDED_KEY_USAGE_free>;
using GeneralNamePtr = SslPtr<GENERAL_NAME, GENERAL_NAME_free>;
using GeneralNamesPtr = SslPtr<GENERAL_NAMES, GENERAL_NAMES_free>;
using OsslLibCtxPtr = SslPtr<OSSL_LIB_CTX, OSSL_LIB_CTX_free>;
using OsslParamBldPtr = SslPtr<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>;
using OsslParamPtr = SslPtr<OSSL_PARAM, OSSL_PARAM_free>;
using OsslStoreCtxPtr = SslPtr<OSSL_STORE_CTX, OSSL_STORE_close>;
using OsslStoreInfoPtr = SslPtr<OSSL_STORE_INFO, OSSL_STORE_INFO_free>;
using UiMethodPtr = SslPtr<UI_METHOD, UI_destroy_method>;
using X509ExtensionPtr = SslPtr<X509_EXTENSION, X509_EXTENSION_free>;
using X509NamePtr = SslPtr<X509_NAME, X509_NAME_free>;
using X509Ptr = SslPtr<X509, X509_free>;
using X509ReqPtr = SslPtr<X509_REQ, X509_REQ_free>;
using X509StoreCtxPtr = SslPtr<X509_STORE_CTX, X509_STORE_CTX_free>;
using X509StorePtr = SslPtr<X509_STORE, X509_STORE_free>;

}  // namespace kubehsm

// Appended for signer/pki (certificate building, PEM encoding).
#include <openssl/decoder.h>
#include <openssl/encoder.h>

namespace kubehsm {

using OsslDecoderCtxPtr = SslPtr<OSSL_DECODER_CTX, OSSL_DECODER_CTX_free>;
using OsslEncoderCtxPtr = SslPtr<OSSL_ENCODER_CTX, OSSL_ENCODER_CTX_free>;
using X509PubkeyPtr = SslPtr<X509_PUBKEY, X509_PUBKEY_free>;
using X509NameEntryPtr = SslPtr<X509_NAME_ENTRY, X509_NAME_ENTRY_free>;
using Asn1StringPtr = SslPtr<ASN1_STRING, ASN1_STRING_free>;
using X509VerifyParamPtr = SslPtr<X509_VERIFY_PARAM, X509_VERIFY_PARAM_free>;

// Frees a STACK_OF(X509) and the certificates it holds.
struct X509StackDeleter {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackDeleter>;

// Frees a buffer OpenSSL allocated for the caller (what i2d_* with a null output pointer returns).
struct OpenSslBufferDeleter {
  void operator()(unsigned char* p) const { OPENSSL_free(p); }
};
using OpenSslBufferPtr = std::unique_ptr<unsigned char, OpenSslBufferDeleter>;

}  // namespace kubehsm

// Appended for signer/pki CSR signing (issue 4).
namespace kubehsm {

// Frees a STACK_OF(X509_EXTENSION) and the extensions it holds (X509_REQ_get_extensions result).
struct X509ExtensionStackDeleter {
  void operator()(STACK_OF(X509_EXTENSION) * s) const { sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free); }
};
using X509ExtensionStackPtr = std::unique_ptr<STACK_OF(X509_EXTENSION), X509ExtensionStackDeleter>;

}  // namespace kubehsm
