// Unit tests of the issuance hook (signer/pki/issuance.h) over a MemoryKeyStore, and of the
// signing-policy parser and key checks (signer/pki/csr.h): the recorder sees every certificate
// before any file holds it, a duplicate serial re-signs, any other recorder error writes nothing.
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/file_util.h"
#include "signer/memory_key_store.h"
#include "signer/pki/csr.h"
#include "signer/pki/init.h"
#include "signer/pki/maintenance.h"
#include "signer/pki/pem.h"
#include "signer/pki/pki_files.h"
#include "tests/pki/csr_test_util.h"
#include "tests/support/test_env.h"

namespace kubehsm::signer::pki {
namespace {

namespace fs = std::filesystem;
using kubehsm::testing::TempDir;

std::string Serial(const X509* cert) {
  BigNumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  char* hex = BN_bn2hex(bn.get());
  std::string s = hex;
  OPENSSL_free(hex);
  return s;
}

class IssuanceHookTest : public ::testing::Test {
 protected:
  IssuanceHookTest() {
    options_.config.node_name = "cp1";
    options_.config.advertise_address = "10.0.0.10";
    options_.config.encryption_algorithm = KeyType::kEcP256;
    options_.cert_dir = dir_.path() / "pki";
    options_.kubeconfig_dir = dir_.path();
  }
  TempDir dir_;
  MemoryKeyStore store_;
  PkiOptions options_;
};

TEST_F(IssuanceHookTest, RecordsEveryCertificateOfInitBeforeItsFileExists) {
  std::vector<std::string> seen;  // "profile/operation/issuer"
  std::set<std::string> serials;
  options_.record = [&](const IssuedCertificate& c) -> Status {
    seen.push_back(std::string(c.profile) + "/" + std::string(c.operation) + "/" + std::string(c.issuer_ca));
    serials.insert(Serial(c.cert));
    // Nothing holding this certificate may exist yet.
    for (const auto& e : fs::recursive_directory_iterator(dir_.path())) {
      if (!e.is_regular_file()) continue;
      const std::string text = ReadFileBounded(e.path(), 1 << 20).value();
      auto pem = CertificateToPem(c.cert).value();
      EXPECT_EQ(text.find(pem), std::string::npos) << e.path() << " holds the certificate before it was recorded";
    }
    return OkStatus();
  };
  auto r = RunInit(store_, options_);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(seen.size(), 15u);  // 3 CAs, 7 leaves, 5 kubeconfigs
  EXPECT_EQ(serials.size(), 15u);
  EXPECT_NE(std::find(seen.begin(), seen.end(), "ca/init/ca"), seen.end());
  EXPECT_NE(std::find(seen.begin(), seen.end(), "etcd-peer/init/etcd-ca"), seen.end());
  EXPECT_NE(std::find(seen.begin(), seen.end(), "front-proxy-client/init/front-proxy-ca"), seen.end());
  EXPECT_NE(std::find(seen.begin(), seen.end(), "kubelet.conf/init/ca"), seen.end());
  // Renewal reports its own operation.
  seen.clear();
  ASSERT_TRUE(RenewCertificates(store_, {"apiserver"}, options_).ok());
  EXPECT_EQ(seen, std::vector<std::string>{"apiserver/renew/ca"});
}

TEST_F(IssuanceHookTest, DuplicateSerialIsResignedWithAFreshSerial) {
  std::vector<std::string> offered;
  options_.record = [&](const IssuedCertificate& c) -> Status {
    offered.push_back(Serial(c.cert));
    if (offered.size() == 1) return AlreadyExists("serial taken");
    return OkStatus();
  };
  auto r = RunInitPhase(store_, InitPhase::kCa, options_);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_GE(offered.size(), 2u);
  EXPECT_NE(offered[0], offered[1]);
  // The file holds the accepted (second) certificate, never the refused one.
  auto ca = LoadCertificateFile(CertPath(options_.cert_dir, "ca")).value();
  EXPECT_EQ(Serial(ca.get()), offered[1]);
}

TEST_F(IssuanceHookTest, RecorderErrorAbortsWithNothingWrittenAndNoKeyLeftBehind) {
  options_.record = [](const IssuedCertificate&) { return Unavailable("ledger: disk full"); };
  auto r = RunInitPhase(store_, InitPhase::kCa, options_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("recording the ca certificate: ledger: disk full"), std::string::npos)
      << r.status().message();
  EXPECT_FALSE(PathExists(CertPath(options_.cert_dir, "ca")));
  EXPECT_EQ(store_.Find("ca").status().code(), StatusCode::kNotFound) << "the key created for it is removed again";
}

TEST_F(IssuanceHookTest, EndlessCollisionsGiveUp) {
  int calls = 0;
  options_.record = [&](const IssuedCertificate&) {
    ++calls;
    return AlreadyExists("taken");
  };
  auto r = RunInitPhase(store_, InitPhase::kCa, options_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(calls, kMaxIssueAttempts);
  EXPECT_NE(r.status().message().find("serial collisions in a row"), std::string::npos);
}

// ---- policy and key checks -----------------------------------------------------------------

struct PolicyCase {
  const char* name;
  const char* profile_yaml;  // one profile entry, indented under `profiles:`
  const char* error;         // expected substring
};

class PolicyParseTest : public ::testing::TestWithParam<PolicyCase> {};

TEST_P(PolicyParseTest, RejectsWithFieldPath) {
  const std::string yaml =
      std::string("apiVersion: kubehsm.io/v1alpha1\nkind: SigningPolicy\nprofiles:\n") + GetParam().profile_yaml;
  auto p = ParseSigningPolicy(yaml);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find(GetParam().error), std::string::npos) << p.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, PolicyParseTest,
    ::testing::Values(
        PolicyCase{"UnknownField",
                   "- {name: p, ca: ca, subject: {commonName: x}, extKeyUsages: [clientAuth], maxValidity: 1h, "
                   "usages: [any]}",
                   "profiles[0].usages: unknown field"},
        PolicyCase{"BadRegex",
                   "- {name: p, ca: ca, subject: {commonName: '(['}, extKeyUsages: [clientAuth], maxValidity: 1h}",
                   "profiles[0] (p).subject.commonName[0]: invalid regular expression"},
        // RE2 (linear time) has no back-references and bounds repetition counts at 1000.
        PolicyCase{"BackReference",
                   "- {name: p, ca: ca, subject: {commonName: '(a)\\1'}, extKeyUsages: [clientAuth], "
                   "maxValidity: 1h}",
                   "profiles[0] (p).subject.commonName[0]: invalid regular expression '(a)\\1': "},
        PolicyCase{"RepetitionOverRe2Limit",
                   "- {name: p, ca: ca, subject: {commonName: 'a{1001}'}, extKeyUsages: [clientAuth], "
                   "maxValidity: 1h}",
                   "invalid regular expression 'a{1001}': invalid repetition size"},
        PolicyCase{"DuplicateKey",
                   "- {name: p, ca: ca, subject: {commonName: x}, extKeyUsages: [clientAuth], maxValidity: 1h, "
                   "maxValidity: 8760h}",
                   "signing policy: duplicate key \"maxValidity\" at line 4"},
        PolicyCase{"BadCidr",
                   "- {name: p, ca: ca, subject: {commonName: x}, sans: {ip: [10.0.0.0/33]}, extKeyUsages: "
                   "[clientAuth], maxValidity: 1h}",
                   "has an invalid prefix length"},
        PolicyCase{"UnknownCa",
                   "- {name: p, ca: root, subject: {commonName: x}, extKeyUsages: [clientAuth], maxValidity: 1h}",
                   "is not one of ca, etcd-ca, front-proxy-ca"},
        PolicyCase{"BuiltinName",
                   "- {name: kubelet-client, ca: ca, subject: {commonName: x}, extKeyUsages: [clientAuth], "
                   "maxValidity: 1h}",
                   "is a built-in profile"},
        PolicyCase{"WeakerRsaMinimum",
                   "- {name: p, ca: ca, subject: {commonName: x}, extKeyUsages: [clientAuth], maxValidity: 1h, "
                   "keys: {rsaMinBits: 1024}}",
                   "rsaMinBits: must be 0 (no RSA) or 2048..8192"},
        PolicyCase{"NoValidity", "- {name: p, ca: ca, subject: {commonName: x}, extKeyUsages: [clientAuth]}",
                   "maxValidity: required"},
        PolicyCase{"CodeSigningEku",
                   "- {name: p, ca: ca, subject: {commonName: x}, extKeyUsages: [codeSigning], maxValidity: 1h}",
                   "'codeSigning' is not serverAuth or clientAuth"}),
    [](const auto& test_info) { return std::string(test_info.param.name); });

struct KeyCase {
  const char* key;
  const char* problem;  // nullptr: accepted under the default policy
};

class KeyCheckTest : public ::testing::TestWithParam<KeyCase> {};

TEST_P(KeyCheckTest, DefaultPolicy) {
  EvpPkeyPtr key = testutil::NewKey(GetParam().key);
  auto problem = CheckKey(key.get(), KeyPolicy{});
  if (GetParam().problem == nullptr) {
    EXPECT_FALSE(problem.has_value()) << *problem;
  } else {
    ASSERT_TRUE(problem.has_value());
    EXPECT_EQ(*problem, GetParam().problem);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Keys, KeyCheckTest,
    ::testing::Values(KeyCase{"rsa-2048", nullptr}, KeyCase{"ec-p256", nullptr}, KeyCase{"ec-p384", nullptr},
                      KeyCase{"rsa-1024", "weak key: RSA-1024 is below the minimum of 2048 bits"},
                      KeyCase{"ec-secp256k1", "unsupported key: ECDSA-secp256k1 (allowed curves: P-256, P-384)"},
                      KeyCase{"ed25519", "unsupported key type ED25519 (only RSA and ECDSA keys)"}),
    [](const auto& test_info) {
      std::string n = test_info.param.key;
      std::replace(n.begin(), n.end(), '-', '_');
      return n;
    });

TEST(SignCsrSpecTest, SubjectAndSansFromRequestUsagesFromProfile) {
  testutil::CsrRequest r;
  r.cn = "system:node:w1";
  r.orgs = {"system:nodes"};
  r.sans = "DNS:w1.example,DNS:w1,IP:192.0.2.1,IP:192.0.2.1";
  r.request_usages = true;
  auto csr = ParseCsrPem(testutil::MakeCsr(r));
  ASSERT_TRUE(csr.ok());
  EXPECT_TRUE(csr->problems.empty());
  auto profile = FindSigningProfile("kubelet-serving", nullptr);
  ASSERT_TRUE(profile.ok());
  const CertSpec spec = SpecForCsr(*csr, *profile);
  EXPECT_EQ(spec.common_name, "system:node:w1");
  EXPECT_EQ(spec.ext_key_usages, std::vector<ExtKeyUsage>{ExtKeyUsage::kServerAuth});
  EXPECT_EQ(spec.sans.dns, (std::vector<std::string>{"w1", "w1.example"})) << "sorted like kubeadm";
  EXPECT_EQ(spec.sans.ips, std::vector<std::string>{"192.0.2.1"}) << "de-duplicated";
}

}  // namespace
}  // namespace kubehsm::signer::pki
