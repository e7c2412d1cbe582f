// Table-driven checks of every certificate `init` issues, field by field and byte by byte against
// kubeadm's profiles (spec kubeadm-pki.md §1, §2, §4, §8), for each CA key type; plus an
// independent verifier (`openssl verify`) with the right and a wrong CA.
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "common/file_util.h"
#include "signer/jwt/sa_keys.h"
#include "signer/memory_key_store.h"
#include "signer/pki/certificate.h"
#include "signer/pki/init.h"
#include "signer/pki/pem.h"
#include "signer/pki/pki_files.h"
#include "tests/pki/pki_test_util.h"
#include "tests/support/test_env.h"

namespace kubehsm::signer::pki {
namespace {

using namespace testutil;  // NOLINT(google-build-using-namespace): test helpers
using kubehsm::testing::RunProcess;
using kubehsm::testing::TempDir;

// 2025-06-01T12:00:00Z: kubeadm's T for these runs.
const Clock::time_point kNow = Clock::from_time_t(1748779200);
// `openssl verify -attime`: an hour after T, inside every validity period.
const std::string kAtTime = "1748782800";

ClusterConfig TestConfig(KeyType type) {
  ClusterConfig c;
  c.node_name = "cp1";
  c.advertise_address = "10.0.0.10";
  c.control_plane_endpoint = "lb.example.com:6443";
  c.apiserver_cert_sans = {"10.0.0.100", "api.example.com"};
  c.etcd_server_cert_sans = {"etcd.example.com"};
  c.etcd_peer_cert_sans = {"10.0.0.11"};
  c.encryption_algorithm = type;
  return c;
}

class CertificateProfileTest : public ::testing::TestWithParam<KeyType> {
 protected:
  void SetUp() override {
    options_.config = TestConfig(GetParam());
    options_.cert_dir = dir_.path() / "pki";
    options_.kubeconfig_dir = dir_.path();
    options_.now = kNow;
    for (InitPhase p : {InitPhase::kCa, InitPhase::kSa, InitPhase::kCerts}) {
      auto r = RunInitPhase(store_, p, options_);
      ASSERT_TRUE(r.ok()) << r.status().message();
    }
  }

  std::filesystem::path Crt(std::string_view base) const { return CertPath(options_.cert_dir, base); }

  int ExpectedSignatureNid() const {
    switch (GetParam()) {
      case KeyType::kEcP256: return NID_ecdsa_with_SHA256;
      case KeyType::kEcP384: return NID_ecdsa_with_SHA384;
      default: return NID_sha256WithRSAEncryption;
    }
  }

  void CheckCommon(const X509* cert, const CertSpec& spec) {
    EXPECT_EQ(X509_get_version(cert), X509_VERSION_3);
    // Serial: positive, at most 8 content bytes, in [1, 2^63 - 2].
    const ASN1_INTEGER* serial = X509_get0_serialNumber(cert);
    EXPECT_NE(ASN1_STRING_type(serial), V_ASN1_NEG_INTEGER);
    EXPECT_LE(ASN1_STRING_length(serial), 8);
    uint64_t v = 0;
    ASSERT_EQ(ASN1_INTEGER_get_uint64(&v, serial), 1);
    EXPECT_GE(v, 1u);
    EXPECT_LE(v, (uint64_t{1} << 63) - 2);
    // Subject bytes: O (one multi-valued RDN) then CN, Go's string types.
    EXPECT_EQ(Hex(SubjectDer(cert).value()), Hex(ExpectedName(spec.common_name, spec.organizations)));
    // Signature algorithm from the CA key type; RSA carries NULL parameters.
    EXPECT_EQ(X509_get_signature_nid(cert), ExpectedSignatureNid());
    const X509_ALGOR* alg = nullptr;
    X509_get0_signature(nullptr, &alg, cert);
    unsigned char* der = nullptr;
    const int len = i2d_X509_ALGOR(alg, &der);
    const std::string alg_der(reinterpret_cast<char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
    if (ExpectedSignatureNid() == NID_sha256WithRSAEncryption) {
      EXPECT_EQ(Hex(alg_der), Hex(Bytes({0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B,
                                         0x05, 0x00})));
    } else {
      EXPECT_EQ(alg_der.size(), ExpectedSignatureNid() == NID_ecdsa_with_SHA256 ? 12u : 12u);  // no parameters
    }
    // No issuer/subject unique IDs.
    const ASN1_BIT_STRING* iuid = nullptr;
    const ASN1_BIT_STRING* suid = nullptr;
    X509_get0_uids(cert, &iuid, &suid);
    EXPECT_EQ(iuid, nullptr);
    EXPECT_EQ(suid, nullptr);
  }

  static std::vector<int> ExtensionNids(const X509* cert) {
    std::vector<int> nids;
    for (int i = 0; i < X509_get_ext_count(cert); ++i) {
      nids.push_back(OBJ_obj2nid(X509_EXTENSION_get_object(X509_get_ext(cert, i))));
    }
    return nids;
  }

  TempDir dir_;
  MemoryKeyStore store_;
  PkiOptions options_;
};

TEST_P(CertificateProfileTest, EveryCaMatchesTheCaProfile) {
  for (const CaProfile& ca : CaProfiles()) {
    SCOPED_TRACE(std::string(ca.name));
    X509Ptr cert = MustLoadCert(Crt(ca.file_base));
    ASSERT_NE(cert, nullptr);
    const CertSpec spec = CaSpec(ca);
    CheckCommon(cert.get(), spec);
    // Self-signed: issuer bytes are the subject bytes, signed by the token key.
    EXPECT_EQ(IssuerDer(cert.get()).value(), SubjectDer(cert.get()).value());
    auto key = store_.Find(ca.key_label);
    ASSERT_TRUE(key.ok());
    EXPECT_TRUE(CertificateHasKey(cert.get(), key->public_key()));
    EXPECT_EQ(X509_verify(cert.get(), key->public_key()), 1);
    EXPECT_EQ(ExtensionNids(cert.get()), (std::vector<int>{NID_key_usage, NID_basic_constraints,
                                                           NID_subject_key_identifier, NID_subject_alt_name}));
    bool critical = false;
    EXPECT_EQ(Hex(ExtensionDer(cert.get(), NID_key_usage, &critical).value()), "03 02 02 A4 ");
    EXPECT_TRUE(critical);
    EXPECT_EQ(Hex(ExtensionDer(cert.get(), NID_basic_constraints, &critical).value()), "30 03 01 01 FF ");
    EXPECT_TRUE(critical);
    // SKI: SHA-1 over the subjectPublicKey BIT STRING contents (Go <= 1.24).
    const unsigned char* pk = nullptr;
    int pk_len = 0;
    X509_PUBKEY_get0_param(nullptr, &pk, &pk_len, nullptr, X509_get_X509_PUBKEY(cert.get()));
    unsigned char sha1[SHA_DIGEST_LENGTH];
    SHA1(pk, static_cast<size_t>(pk_len), sha1);
    EXPECT_EQ(Hex(ExtensionDer(cert.get(), NID_subject_key_identifier, &critical).value()),
              Hex(Tlv(0x04, std::string(reinterpret_cast<char*>(sha1), sizeof(sha1)))));
    EXPECT_FALSE(critical);
    EXPECT_EQ(Hex(ExtensionDer(cert.get(), NID_subject_alt_name, &critical).value()), Hex(ExpectedSan(spec.sans)));
    EXPECT_FALSE(critical);
    EXPECT_EQ(ExtensionDer(cert.get(), NID_authority_key_identifier).status().code(), StatusCode::kNotFound);
    EXPECT_EQ(ExtensionDer(cert.get(), NID_ext_key_usage).status().code(), StatusCode::kNotFound);
    // Validity: T - 5 min to T + caCertificateValidityPeriod.
    auto validity = CertificateValidity(cert.get());
    ASSERT_TRUE(validity.ok());
    EXPECT_EQ(validity->not_before, kNow - std::chrono::minutes(5));
    EXPECT_EQ(validity->not_after, kNow + std::chrono::hours(87600));
    EXPECT_EQ(FileMode(Crt(ca.file_base)), 0644);
    // The CA key is in the token, never on disk.
    EXPECT_FALSE(PathExists(KeyPath(options_.cert_dir, ca.file_base)));
  }
  EXPECT_FALSE(PathExists(options_.cert_dir / "sa.key"));
}

TEST_P(CertificateProfileTest, EveryLeafMatchesItsProfile) {
  for (const LeafProfile& leaf : LeafProfiles()) {
    SCOPED_TRACE(std::string(leaf.name));
    X509Ptr cert = MustLoadCert(Crt(leaf.file_base));
    X509Ptr ca = MustLoadCert(Crt(GetCaProfile(leaf.ca).file_base));
    ASSERT_TRUE(cert && ca);
    auto spec = LeafSpec(leaf, options_.config, nullptr);
    ASSERT_TRUE(spec.ok());
    CheckCommon(cert.get(), *spec);
    // Issuer copied byte-for-byte from the CA's subject; signature verifies with the CA key.
    EXPECT_EQ(IssuerDer(cert.get()).value(), SubjectDer(ca.get()).value());
    EXPECT_EQ(X509_verify(cert.get(), X509_get0_pubkey(ca.get())), 1);
    const bool has_sans = leaf.sans != SanRule::kNone;
    std::vector<int> want_order = {NID_key_usage, NID_ext_key_usage, NID_basic_constraints,
                                   NID_authority_key_identifier};
    if (has_sans) want_order.push_back(NID_subject_alt_name);
    EXPECT_EQ(ExtensionNids(cert.get()), want_order);
    bool critical = false;
    EXPECT_EQ(Hex(ExtensionDer(cert.get(), NID_key_usage, &critical).value()), "03 02 05 A0 ");
    EXPECT_TRUE(critical);
    EXPECT_EQ(Hex(ExtensionDer(cert.get(), NID_basic_constraints, &critical).value()), "30 00 ");
    EXPECT_TRUE(critical);
    EXPECT_EQ(Hex(ExtensionDer(cert.get(), NID_ext_key_usage, &critical).value()),
              Hex(ExpectedEku(leaf.ext_key_usages)));
    EXPECT_FALSE(critical);
    // AKI: keyIdentifier [0] only, equal to the CA's SKI.
    const std::string ca_ski = ExtensionDer(ca.get(), NID_subject_key_identifier).value().substr(2);
    EXPECT_EQ(Hex(ExtensionDer(cert.get(), NID_authority_key_identifier, &critical).value()),
              Hex(Tlv(0x30, Tlv(0x80, ca_ski))));
    EXPECT_FALSE(critical);
    EXPECT_EQ(ExtensionDer(cert.get(), NID_subject_key_identifier).status().code(), StatusCode::kNotFound);
    if (has_sans) {
      EXPECT_EQ(Hex(ExtensionDer(cert.get(), NID_subject_alt_name, &critical).value()), Hex(ExpectedSan(spec->sans)));
      EXPECT_FALSE(critical);
    }
    auto validity = CertificateValidity(cert.get());
    ASSERT_TRUE(validity.ok());
    EXPECT_EQ(validity->not_before, kNow - std::chrono::minutes(5));
    EXPECT_EQ(validity->not_after, kNow + std::chrono::hours(8760));
    // Leaf key: software, of the cluster's algorithm, type-specific PEM, mode 0600.
    const auto key_path = KeyPath(options_.cert_dir, leaf.file_base);
    EXPECT_EQ(FileMode(key_path), 0600);
    EXPECT_EQ(FileMode(Crt(leaf.file_base)), 0644);
    const std::string key_pem = ReadFileBounded(key_path, 1 << 16).value();
    EXPECT_TRUE(key_pem.starts_with(IsRsa(GetParam()) ? "-----BEGIN RSA PRIVATE KEY-----\n"
                                                      : "-----BEGIN EC PRIVATE KEY-----\n"))
        << key_pem;
    auto key = ParsePrivateKeyPem(key_pem);
    ASSERT_TRUE(key.ok());
    EXPECT_EQ(KeyTypeOf(key->get()).value(), GetParam());
    EXPECT_TRUE(CertificateHasKey(cert.get(), key->get()));
  }
  // The exact SAN lists for the per-node certificates (sorted DNS, first-seen IPs).
  auto api = SpecFromCertificate(MustLoadCert(Crt("apiserver")).get());
  EXPECT_EQ(api->sans.dns, (std::vector<std::string>{"api.example.com", "cp1", "kubernetes", "kubernetes.default",
                                                     "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
                                                     "lb.example.com"}));
  EXPECT_EQ(api->sans.ips, (std::vector<std::string>{"10.96.0.1", "10.0.0.10", "10.0.0.100"}));
  auto peer = SpecFromCertificate(MustLoadCert(Crt("etcd/peer")).get());
  EXPECT_EQ(peer->common_name, "cp1");
  EXPECT_EQ(peer->sans.ips, (std::vector<std::string>{"10.0.0.10", "127.0.0.1", "::1", "10.0.0.11"}));
}

TEST_P(CertificateProfileTest, PemFilesUseGoLayout) {
  for (const auto& path : {Crt("apiserver"), KeyPath(options_.cert_dir, "apiserver"), options_.cert_dir / "sa.pub"}) {
    const std::string pem = ReadFileBounded(path, 1 << 16).value();
    SCOPED_TRACE(path.string());
    ASSERT_FALSE(pem.empty());
    EXPECT_EQ(pem.back(), '\n');
    EXPECT_EQ(pem.find('\r'), std::string::npos);
    size_t start = 0;
    int body_lines = 0;
    while (start < pem.size()) {
      const size_t nl = pem.find('\n', start);
      const std::string line = pem.substr(start, nl - start);
      if (!line.starts_with("-----")) {
        EXPECT_LE(line.size(), 64u);
        ++body_lines;
      }
      start = nl + 1;
    }
    EXPECT_GT(body_lines, 0);
  }
  EXPECT_TRUE(ReadFileBounded(options_.cert_dir / "sa.pub", 1 << 16)->starts_with("-----BEGIN PUBLIC KEY-----\n"));
  EXPECT_EQ(FileMode(options_.cert_dir / "sa.pub"), 0600);
  auto sa = jwt::FindActiveSaKey(store_);
  ASSERT_TRUE(sa.ok());
  EXPECT_EQ(sa->key.type(), GetParam());
  EXPECT_EQ(PublicKeyToPem(sa->key.public_key()).value(),
            ReadFileBounded(options_.cert_dir / "sa.pub", 1 << 16).value());
}

// `openssl verify` is the independent verifier: each certificate verifies against its own CA with
// the purpose its EKUs allow, and fails against another CA.
TEST_P(CertificateProfileTest, OpensslVerifyAcceptsRightCaAndRejectsWrongCa) {
  for (const LeafProfile& leaf : LeafProfiles()) {
    SCOPED_TRACE(std::string(leaf.name));
    const auto right = Crt(GetCaProfile(leaf.ca).file_base);
    const auto wrong = Crt(GetCaProfile(leaf.ca == CaId::kCa ? CaId::kFrontProxyCa : CaId::kCa).file_base);
    for (ExtKeyUsage eku : leaf.ext_key_usages) {
      const std::string purpose = eku == ExtKeyUsage::kServerAuth ? "sslserver" : "sslclient";
      auto ok = RunProcess({"openssl", "verify", "-attime", kAtTime, "-x509_strict", "-CAfile", right.string(), "-purpose", purpose,
                            Crt(leaf.file_base).string()});
      EXPECT_EQ(ok.exit_code, 0) << purpose << ": " << ok.out << ok.err;
      auto bad = RunProcess({"openssl", "verify", "-attime", kAtTime, "-CAfile", wrong.string(), "-purpose", purpose,
                             Crt(leaf.file_base).string()});
      EXPECT_NE(bad.exit_code, 0) << purpose << ": " << bad.out;
    }
    // A certificate is only good for its own EKUs.
    if (leaf.ext_key_usages.size() == 1) {
      const std::string other =
          leaf.ext_key_usages[0] == ExtKeyUsage::kServerAuth ? "sslclient" : "sslserver";
      auto bad = RunProcess({"openssl", "verify", "-attime", kAtTime, "-CAfile", right.string(), "-purpose", other,
                             Crt(leaf.file_base).string()});
      EXPECT_NE(bad.exit_code, 0) << other;
    }
  }
  for (const CaProfile& ca : CaProfiles()) {
    auto ok = RunProcess({"openssl", "verify", "-attime", kAtTime, "-x509_strict", "-CAfile", Crt(ca.file_base).string(),
                          Crt(ca.file_base).string()});
    EXPECT_EQ(ok.exit_code, 0) << ca.name << ": " << ok.out << ok.err;
  }
}

INSTANTIATE_TEST_SUITE_P(KeyTypes, CertificateProfileTest,
                         ::testing::Values(KeyType::kRsa2048, KeyType::kEcP256, KeyType::kEcP384),
                         [](const auto& p) {
                           std::string n(KeyTypeName(p.param));
                           for (auto& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

TEST(CertificateBuilderTest, SeveralOrganizationsShareOneRdn) {
  CertSpec spec;
  spec.common_name = "user_1";  // '_' is not printable: UTF8String
  spec.organizations = {"zeta", "alpha", "system:masters"};
  auto name = BuildSubjectName(spec);
  ASSERT_TRUE(name.ok());
  unsigned char* der = nullptr;
  const int len = i2d_X509_NAME(name->get(), &der);
  const std::string got(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  EXPECT_EQ(Hex(got), Hex(ExpectedName("user_1", spec.organizations)));
  EXPECT_EQ(X509_NAME_entry_count(name->get()), 4);
}

// A key that signs through a digest signer (a token without the combined mechanism) yields the same
// certificate encoding as EVP signing, and a signature that does not verify is never embedded.
SigningKey DigestSigningKey(const SigningKey& soft, bool corrupt) {
  EVP_PKEY_up_ref(soft.pkey());
  EvpPkeyPtr pkey(soft.pkey());
  SigningKey::Options options;
  options.origin = "key 'test-ca' in token 't' (CKM_RSA_PKCS)";
  EVP_PKEY* raw = soft.pkey();
  const KeyType type = soft.type();
  options.digest_signer = [raw, type, corrupt](std::string_view digest_name,
                                               std::string_view digest) -> Result<std::string> {
    EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(raw, nullptr));
    if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1) return Internal("init");
    if (IsRsa(type) && (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1 ||
                        EVP_PKEY_CTX_set_signature_md(
                            ctx.get(), EVP_get_digestbyname(std::string(digest_name).c_str())) != 1)) {
      return Internal("params");
    }
    size_t len = 1024;
    std::string sig(len, '\0');
    if (EVP_PKEY_sign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                      reinterpret_cast<const unsigned char*>(digest.data()), digest.size()) != 1) {
      return Internal("sign");
    }
    sig.resize(len);
    if (!IsRsa(type)) {
      auto r = EcdsaDerToRaw(sig, type);
      if (!r.ok()) return r.status();
      sig = *r;
    }
    if (corrupt) sig[sig.size() / 2] ^= 0x01;
    return sig;
  };
  auto key = SigningKey::Create(std::move(pkey), nullptr, std::move(options));
  EXPECT_TRUE(key.ok()) << key.status().message();
  return std::move(*key);
}

class DigestSignerCertificateTest : public ::testing::TestWithParam<KeyType> {};

TEST_P(DigestSignerCertificateTest, SameEncodingAsEvpSigningAndVerifies) {
  auto soft = SigningKey::GenerateSoftware(GetParam());
  ASSERT_TRUE(soft.ok());
  const SigningKey token_like = DigestSigningKey(*soft, false);
  const Validity v{kNow, kNow + std::chrono::hours(24)};
  auto via_evp = SelfSignCa(*soft, CaSpec(GetCaProfile(CaId::kCa)), v);
  auto via_digest = SelfSignCa(token_like, CaSpec(GetCaProfile(CaId::kCa)), v);
  ASSERT_TRUE(via_evp.ok() && via_digest.ok()) << via_digest.status().message();
  EXPECT_EQ(X509_verify(via_digest->get(), soft->public_key()), 1);
  // Same AlgorithmIdentifier bytes (inner and outer) as OpenSSL's own X509_sign path.
  const X509_ALGOR* a1 = nullptr;
  const X509_ALGOR* a2 = nullptr;
  X509_get0_signature(nullptr, &a1, via_evp->get());
  X509_get0_signature(nullptr, &a2, via_digest->get());
  unsigned char* d1 = nullptr;
  unsigned char* d2 = nullptr;
  const int l1 = i2d_X509_ALGOR(a1, &d1);
  const int l2 = i2d_X509_ALGOR(a2, &d2);
  const std::string e1(reinterpret_cast<char*>(d1), static_cast<size_t>(l1));
  const std::string e2(reinterpret_cast<char*>(d2), static_cast<size_t>(l2));
  OPENSSL_free(d1);
  OPENSSL_free(d2);
  EXPECT_EQ(Hex(e1), Hex(e2));
  EXPECT_EQ(X509_ALGOR_cmp(a2, X509_get0_tbs_sigalg(via_digest->get())), 0);
  // And the independent verifier agrees.
  TempDir dir;
  const auto path = dir.path() / "ca.crt";
  auto pem = CertificateToPem(via_digest->get());
  ASSERT_TRUE(pem.ok());
  ASSERT_TRUE(WriteFileAtomic(path, *pem, 0644).ok());
  auto r = RunProcess({"openssl", "verify", "-attime", kAtTime, "-CAfile", path.string(), path.string()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST_P(DigestSignerCertificateTest, TokenReturningABadSignatureYieldsNoCertificate) {
  auto soft = SigningKey::GenerateSoftware(GetParam());
  ASSERT_TRUE(soft.ok());
  const SigningKey broken = DigestSigningKey(*soft, true);
  auto cert = SelfSignCa(broken, CaSpec(GetCaProfile(CaId::kCa)), {kNow, kNow + std::chrono::hours(24)});
  ASSERT_FALSE(cert.ok());
  EXPECT_EQ(cert.status().code(), StatusCode::kInternal);
  EXPECT_NE(cert.status().message().find("key 'test-ca' in token 't'"), std::string::npos) << cert.status().message();
}

INSTANTIATE_TEST_SUITE_P(KeyTypes, DigestSignerCertificateTest,
                         ::testing::Values(KeyType::kRsa2048, KeyType::kEcP256, KeyType::kEcP384),
                         [](const auto& test_info) {
                           std::string n(KeyTypeName(test_info.param));
                           for (auto& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

TEST(CertificateBuilderTest, TimesFrom2050AreGeneralizedTime) {
  auto key = SigningKey::GenerateSoftware(KeyType::kEcP256);
  ASSERT_TRUE(key.ok());
  const Clock::time_point t2049 = Clock::from_time_t(2524607999);  // 2049-12-31T23:59:59Z
  const Clock::time_point t2050 = Clock::from_time_t(2524608000);  // 2050-01-01T00:00:00Z
  auto cert = SelfSignCa(*key, CaSpec(GetCaProfile(CaId::kCa)), {t2049, t2050});
  ASSERT_TRUE(cert.ok());
  EXPECT_EQ(ASN1_STRING_type(X509_get0_notBefore(cert->get())), V_ASN1_UTCTIME);
  EXPECT_EQ(ASN1_STRING_type(X509_get0_notAfter(cert->get())), V_ASN1_GENERALIZEDTIME);
  auto validity = CertificateValidity(cert->get());
  ASSERT_TRUE(validity.ok());
  EXPECT_EQ(validity->not_before, t2049);
  EXPECT_EQ(validity->not_after, t2050);
}

TEST(CertificateBuilderTest, SerialsAreRandomAndInRange) {
  std::set<uint64_t> seen;
  for (int i = 0; i < 200; ++i) {
    auto s = RandomSerial();
    ASSERT_TRUE(s.ok());
    uint64_t v = 0;
    ASSERT_EQ(ASN1_INTEGER_get_uint64(&v, s->get()), 1);
    EXPECT_GE(v, 1u);
    EXPECT_LE(v, (uint64_t{1} << 63) - 2);
    seen.insert(v);
  }
  EXPECT_EQ(seen.size(), 200u);
}

TEST(CertificateBuilderTest, IssueLeafFailsWhenCaKeyDoesNotMatch) {
  auto ca_key = SigningKey::GenerateSoftware(KeyType::kEcP256);
  auto other = SigningKey::GenerateSoftware(KeyType::kEcP256);
  ASSERT_TRUE(ca_key.ok() && other.ok());
  const Validity v{kNow, kNow + std::chrono::hours(1)};
  auto ca = SelfSignCa(*ca_key, CaSpec(GetCaProfile(CaId::kCa)), v);
  ASSERT_TRUE(ca.ok());
  CertSpec spec;
  spec.common_name = "x";
  auto leaf = IssueLeaf(*other, ca->get(), other->public_key(), spec, v);
  EXPECT_EQ(leaf.status().code(), StatusCode::kFailedPrecondition);
  // And a leaf signed by the right key verifies only with that CA; a changed certificate fails.
  auto good = IssueLeaf(*ca_key, ca->get(), other->public_key(), spec, v);
  ASSERT_TRUE(good.ok());
  EXPECT_TRUE(VerifyIssuedBy(good->get(), ca->get()).ok());
  auto other_ca = SelfSignCa(*other, CaSpec(GetCaProfile(CaId::kCa)), v);
  EXPECT_EQ(VerifyIssuedBy(good->get(), other_ca->get()).code(), StatusCode::kPermissionDenied);
  X509_set1_notAfter(good->get(), X509_get0_notBefore(good->get()));  // tamper with the signed TBS
  EXPECT_EQ(VerifyIssuedBy(good->get(), ca->get()).code(), StatusCode::kPermissionDenied);
}

TEST(PemTest, EcPrivateKeyIsSec1WithNamedCurveAndPublicKey) {
  auto key = SigningKey::GenerateSoftware(KeyType::kEcP256);
  ASSERT_TRUE(key.ok());
  auto pem = PrivateKeyToPem(key->pkey());
  ASSERT_TRUE(pem.ok()) << pem.status().message();
  TempDir dir;
  kubehsm::testing::WriteTestFile(dir.path() / "k.pem", *pem);
  // `openssl asn1parse` shows the SEC1 structure: version 1, the key, [0] namedCurve, [1] public key.
  auto parsed = RunProcess({"openssl", "asn1parse", "-in", (dir.path() / "k.pem").string()});
  ASSERT_EQ(parsed.exit_code, 0) << parsed.err;
  EXPECT_NE(parsed.out.find("prime256v1"), std::string::npos) << parsed.out;
  EXPECT_NE(parsed.out.find("cont [ 1 ]"), std::string::npos) << parsed.out;
  EXPECT_TRUE(pem->starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
  auto back = ParsePrivateKeyPem(*pem);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(EVP_PKEY_eq(back->get(), key->pkey()), 1);
}

TEST(PemTest, RejectsGarbageAndUnsupportedKeys) {
  EXPECT_EQ(ParseCertificatesPem("nothing here").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParsePrivateKeyPem("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n")
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EvpPkeyPtr ed(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  ASSERT_NE(ed, nullptr);
  EXPECT_EQ(PrivateKeyToPem(ed.get()).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kubehsm::signer::pki
