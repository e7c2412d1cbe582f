// Helpers for the CSR signing tests: PKCS#10 requests built in-process with plain OpenSSL (so a
// test can make requests the openssl CLI refuses to make: duplicate extensions, a bad signature,
// an unknown critical extension), and a SoftHSM + kubehsm binary fixture with the CAs in place.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/file_util.h"
#include "common/ssl_ptr.h"
#include "tests/support/test_env.h"

namespace kubehsm::signer::pki::testutil {

struct CsrRequest {
  std::string cn;
  std::vector<std::string> orgs;
  std::string sans;               // "DNS:a,IP:1.2.3.4" (openssl syntax), empty for none
  std::string key = "ec-p256";    // rsa-1024 | rsa-2048 | ec-p256 | ec-p384 | ec-secp256k1 | ed25519
  bool ca_true = false;           // basicConstraints critical CA:TRUE
  bool duplicate_san = false;     // the SAN extension twice
  bool unknown_critical = false;  // a critical extension 1.3.6.1.4.1.99999.1
  bool bad_signature = false;     // signed by another key than the one it carries
  bool request_usages = false;    // keyUsage keyCertSign,cRLSign + extKeyUsage codeSigning
};

inline EvpPkeyPtr NewKey(const std::string& type) {
  EVP_PKEY* k = nullptr;
  if (type == "rsa-1024") k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(1024));
  if (type == "rsa-2048") k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
  if (type == "ec-p256") k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (type == "ec-p384") k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384");
  if (type == "ec-secp256k1") k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "secp256k1");
  if (type == "ed25519") k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  EXPECT_NE(k, nullptr) << "cannot generate " << type;
  return EvpPkeyPtr(k);
}

inline X509ExtensionPtr Ext(int nid, const std::string& value) {
  X509ExtensionPtr e(X509V3_EXT_nconf_nid(nullptr, nullptr, nid, value.c_str()));
  EXPECT_TRUE(e) << "extension " << value;
  return e;
}

// A PEM CERTIFICATE REQUEST as described by `r`.
inline std::string MakeCsr(const CsrRequest& r) {
  EvpPkeyPtr key = NewKey(r.key);
  X509ReqPtr req(X509_REQ_new());
  X509_REQ_set_version(req.get(), X509_REQ_VERSION_1);
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  for (const auto& o : r.orgs) {
    X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(o.c_str()), -1, -1, 0);
  }
  if (!r.cn.empty()) {
    X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(r.cn.c_str()), -1, -1, 0);
  }
  X509_REQ_set_pubkey(req.get(), key.get());
  X509ExtensionStackPtr exts(sk_X509_EXTENSION_new_null());
  auto push = [&](X509ExtensionPtr e) { sk_X509_EXTENSION_push(exts.get(), e.release()); };
  if (!r.sans.empty()) push(Ext(NID_subject_alt_name, r.sans));
  if (r.duplicate_san) push(Ext(NID_subject_alt_name, r.sans.empty() ? "DNS:dup.example" : r.sans));
  if (r.ca_true) push(Ext(NID_basic_constraints, "critical,CA:TRUE"));
  if (r.request_usages) {
    push(Ext(NID_key_usage, "critical,keyCertSign,cRLSign"));
    push(Ext(NID_ext_key_usage, "codeSigning"));
  }
  if (r.unknown_critical) {
    Asn1ObjectPtr oid(OBJ_txt2obj("1.3.6.1.4.1.99999.1", 1));
    Asn1OctetStringPtr value(ASN1_OCTET_STRING_new());
    ASN1_OCTET_STRING_set(value.get(), reinterpret_cast<const unsigned char*>("\x05\x00"), 2);
    push(X509ExtensionPtr(X509_EXTENSION_create_by_OBJ(nullptr, oid.get(), 1, value.get())));
  }
  if (sk_X509_EXTENSION_num(exts.get()) > 0) X509_REQ_add_extensions(req.get(), exts.get());
  EvpPkeyPtr signer = r.bad_signature ? NewKey(r.key) : nullptr;
  const bool edwards = r.key == "ed25519";
  EXPECT_GT(X509_REQ_sign(req.get(), signer ? signer.get() : key.get(), edwards ? nullptr : EVP_sha256()), 0);
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), req.get());
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

// A fresh SoftHSM token, kubehsm's config beside it (ledger.db and audit.log live there too) and,
// after SetUp, the three CAs and the SA key (`kubehsm init phase ca|sa`, ECDSA P-256) in `ca_dir()`.
class KubehsmCaFixture : public ::testing::Test {
 protected:
  KubehsmCaFixture() {
    token_.WriteKubehsmConfig();
    env_ = token_.ChildEnv();
  }
  void SetUp() override {
    for (const char* phase : {"ca", "sa"}) {
      auto r = Kubehsm({"init", "phase", phase, "--cert-dir", ca_dir().string(), "--node-name", "signer",
                        "--advertise-address", "127.0.0.1", "--encryption-algorithm", "ECDSA-P256"});
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
  }

  kubehsm::testing::ProcessResult Kubehsm(std::vector<std::string> args) {
    args.insert(args.begin(), kubehsm::testing::KubehsmBinary().string());
    return kubehsm::testing::RunProcess(args, env_);
  }
  std::vector<std::string> KubehsmArgv(std::vector<std::string> args) const {
    args.insert(args.begin(), kubehsm::testing::KubehsmBinary().string());
    return args;
  }

  std::filesystem::path dir() const { return dir_.path(); }
  std::filesystem::path ca_dir() const { return dir_.path() / "box" / "pki"; }
  std::filesystem::path ledger_path() const { return token_.dir() / "ledger.db"; }
  std::filesystem::path audit_path() const { return token_.dir() / "audit.log"; }
  const std::map<std::string, std::string>& env() const { return env_; }

  // Writes `pem` to <dir>/<name> and returns the path.
  std::filesystem::path WriteCsr(const std::string& name, const std::string& pem) const {
    const auto p = dir_.path() / name;
    kubehsm::testing::WriteTestFile(p, pem);
    return p;
  }

  kubehsm::testing::SoftHsmToken token_;
  kubehsm::testing::TempDir dir_;
  std::map<std::string, std::string> env_;
};

}  // namespace kubehsm::signer::pki::testutil
