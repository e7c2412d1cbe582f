// `kubehsm certs sign-csr` end to end: the real binary on a fresh SoftHSM token with the CAs made
// by `kubehsm init phase ca`. One test per refusal reason, each checking the message, that no
// output file exists and that the refusal is in the audit trail; accepted requests are checked
// with `openssl verify` and `openssl x509` (the profile, not the request, decides KU/BC/EKU/validity).
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/file_util.h"
#include "tests/pki/csr_test_util.h"
#include "tests/support/test_env.h"

namespace kubehsm::signer::pki {
namespace {

namespace fs = std::filesystem;
using kubehsm::testing::ProcessResult;
using kubehsm::testing::RunProcess;
using testutil::CsrRequest;
using testutil::MakeCsr;

class SignCsrTest : public testutil::KubehsmCaFixture {
 protected:
  // Runs sign-csr on `req` under `profile` (+ extra flags) writing to <dir>/out.crt.
  ProcessResult Sign(const CsrRequest& req, const std::string& profile, std::vector<std::string> extra = {}) {
    const fs::path csr = WriteCsr("req.csr", MakeCsr(req));
    std::vector<std::string> args = {"certs", "sign-csr", "--csr",        csr.string(), "--profile",
                                     profile, "--out",    out().string(), "--cert-dir", ca_dir().string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return Kubehsm(args);
  }
  fs::path out() const { return dir() / "out.crt"; }

  // The refusal contract: exit 2, one error line containing `message`, no output file, and a
  // csr-refused audit record with the same reason.
  void ExpectRefused(const ProcessResult& r, const std::string& message) {
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_NE(r.err.find("kubehsm: error: CSR refused: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(out())) << "a refused CSR must not produce a file";
    const std::string audit = kubehsm::testing::ReadTestFile(audit_path());
    EXPECT_NE(audit.find("\"event\":\"csr-refused\""), std::string::npos);
    EXPECT_NE(audit.find(message), std::string::npos) << "the audit record carries the reason";
  }

  // An explicit -nameopt: the default name format of -text differs between OpenSSL 3.0 and 3.5.
  std::string OpensslText() {
    return RunProcess({"openssl", "x509", "-in", out().string(), "-noout", "-text", "-nameopt", "oneline"}).out;
  }
};

CsrRequest KubeletClient(const std::string& node = "worker-1") {
  CsrRequest r;
  r.cn = "system:node:" + node;
  r.orgs = {"system:nodes"};
  return r;
}

TEST_F(SignCsrTest, SignsKubeletClientWithProfileUsagesOnly) {
  CsrRequest req = KubeletClient();
  req.request_usages = true;  // keyCertSign + codeSigning requested: must be ignored
  auto r = Sign(req, "kubelet-client", {"--validity", "24h"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto verify = RunProcess(
      {"openssl", "verify", "-CAfile", (ca_dir() / "ca.crt").string(), "-purpose", "sslclient", out().string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  const std::string text = OpensslText();
  EXPECT_NE(text.find("Subject: O = system:nodes, CN = system:node:worker-1"), std::string::npos) << text;
  EXPECT_NE(text.find("Digital Signature, Key Encipherment\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("Certificate Sign"), std::string::npos) << "KU comes from the profile";
  EXPECT_NE(text.find("TLS Web Client Authentication\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("Code Signing"), std::string::npos) << "EKU comes from the profile";
  EXPECT_NE(text.find("CA:FALSE"), std::string::npos) << text;
  auto dates = RunProcess({"openssl", "x509", "-in", out().string(), "-noout", "-checkend", "86000"});
  EXPECT_EQ(dates.exit_code, 0) << "valid for about 24h";
  dates = RunProcess({"openssl", "x509", "-in", out().string(), "-noout", "-checkend", "87000"});
  EXPECT_NE(dates.exit_code, 0) << "but not much longer";
}

TEST_F(SignCsrTest, SignsKubeletServingForTheNodesOwnNames) {
  kubehsm::testing::WriteTestFile(dir() / "policy.yaml", R"(apiVersion: kubehsm.io/v1alpha1
kind: SigningPolicy
kubeletServing:
  nodes: [worker-1]
  domains: [example.org]
)");
  CsrRequest req = KubeletClient("worker-1");
  req.sans = "DNS:worker-1,DNS:worker-1.example.org,IP:192.0.2.10";
  auto r = Sign(req, "kubelet-serving", {"--node-ip", "192.0.2.10", "--policy", (dir() / "policy.yaml").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto verify = RunProcess(
      {"openssl", "verify", "-CAfile", (ca_dir() / "ca.crt").string(), "-purpose", "sslserver", out().string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  const std::string text = OpensslText();
  EXPECT_NE(text.find("DNS:worker-1, DNS:worker-1.example.org, IP Address:192.0.2.10"), std::string::npos) << text;
}

TEST_F(SignCsrTest, SignsCustomPolicyProfile) {
  kubehsm::testing::WriteTestFile(dir() / "policy.yaml", R"(apiVersion: kubehsm.io/v1alpha1
kind: SigningPolicy
profiles:
  - name: ingress
    ca: front-proxy-ca
    subject:
      commonName: '^[a-z0-9-]+\.apps\.example\.com$'
      organizations: ['^team-a$']
    sans:
      dns: ['^[a-z0-9-]+\.apps\.example\.com$']
      ip: ['10.20.0.0/16']
    extKeyUsages: [serverAuth, clientAuth]
    maxValidity: 720h
    keys:
      rsaMinBits: 3072
      ecdsaCurves: [P-256]
)");
  CsrRequest req;
  req.cn = "shop.apps.example.com";
  req.orgs = {"team-a"};
  req.sans = "DNS:shop.apps.example.com,IP:10.20.1.2";
  auto r = Sign(req, "ingress", {"--policy", (dir() / "policy.yaml").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto verify =
      RunProcess({"openssl", "verify", "-CAfile", (ca_dir() / "front-proxy-ca.crt").string(), out().string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  // The same profile refuses a key its keys: section does not allow (RSA below 3072 bits).
  fs::remove(out());
  req.key = "rsa-2048";
  ExpectRefused(Sign(req, "ingress", {"--policy", (dir() / "policy.yaml").string()}),
                "weak key: RSA-2048 is below the minimum of 3072 bits");
}

TEST_F(SignCsrTest, SignCsrFailsWithBadSignature) {
  CsrRequest req = KubeletClient();
  req.bad_signature = true;
  ExpectRefused(Sign(req, "kubelet-client"), "bad CSR signature: the request is not signed by the key it carries");
}

TEST_F(SignCsrTest, SignCsrFailsWithDisallowedCommonName) {
  CsrRequest req = KubeletClient();
  req.cn = "kubernetes-admin";
  ExpectRefused(Sign(req, "kubelet-client"),
                "disallowed CN 'kubernetes-admin': profile 'kubelet-client' requires 'system:node:<node name>'");
}

TEST_F(SignCsrTest, SignCsrFailsWithDisallowedOrganization) {
  CsrRequest req = KubeletClient();
  req.orgs = {"system:nodes", "system:masters"};
  ExpectRefused(Sign(req, "kubelet-client"),
                "disallowed O [system:nodes, system:masters]: profile 'kubelet-client' requires [system:nodes]");
}

TEST_F(SignCsrTest, SignCsrFailsWithDisallowedSan) {
  CsrRequest req = KubeletClient("worker-1");
  req.sans = "DNS:worker-1,DNS:kubernetes.default.svc";
  ExpectRefused(Sign(req, "kubelet-serving"),
                "disallowed SAN DNS:kubernetes.default.svc: profile 'kubelet-serving' allows only the node's own name");
}

TEST_F(SignCsrTest, SignCsrFailsWithIpSanNotOfTheNode) {
  CsrRequest req = KubeletClient("worker-1");
  req.sans = "DNS:worker-1,IP:10.96.0.1";
  ExpectRefused(Sign(req, "kubelet-serving", {"--node-ip", "192.0.2.10"}),
                "disallowed SAN IP:10.96.0.1: not one of the node's addresses (--node-ip: 192.0.2.10)");
}

TEST_F(SignCsrTest, SignCsrFailsWithSanOutsideTheClusterConfig) {
  kubehsm::testing::WriteTestFile(dir() / "kubeadm.yaml", R"(apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration:
  name: cp1
localAPIEndpoint:
  advertiseAddress: 192.0.2.1
)");
  CsrRequest req;
  req.cn = "kube-apiserver";
  req.sans = "DNS:kubernetes,DNS:evil.example.com,IP:192.0.2.1";
  ExpectRefused(Sign(req, "apiserver", {"--config", (dir() / "kubeadm.yaml").string()}),
                "disallowed SAN DNS:evil.example.com: not among the names the cluster config gives 'apiserver'");
}

TEST_F(SignCsrTest, SignCsrFailsWithCaTrueRequest) {
  CsrRequest req = KubeletClient();
  req.ca_true = true;
  ExpectRefused(Sign(req, "kubelet-client"), "the request asks for CA:TRUE (basicConstraints)");
}

TEST_F(SignCsrTest, SignCsrFailsWithWeakRsaKey) {
  CsrRequest req = KubeletClient();
  req.key = "rsa-1024";
  ExpectRefused(Sign(req, "kubelet-client"), "weak key: RSA-1024 is below the minimum of 2048 bits");
}

TEST_F(SignCsrTest, SignCsrFailsWithUnsupportedCurve) {
  CsrRequest req = KubeletClient();
  req.key = "ec-secp256k1";
  ExpectRefused(Sign(req, "kubelet-client"), "unsupported key: ECDSA-secp256k1 (allowed curves: P-256, P-384)");
}

TEST_F(SignCsrTest, SignCsrFailsWithUnsupportedKeyType) {
  CsrRequest req = KubeletClient();
  req.key = "ed25519";
  ExpectRefused(Sign(req, "kubelet-client"), "unsupported key type ED25519 (only RSA and ECDSA keys)");
}

TEST_F(SignCsrTest, SignCsrFailsWithValidityOverMaximum) {
  ExpectRefused(Sign(KubeletClient(), "kubelet-client", {"--validity", "9000h"}),
                "validity over the maximum: 9000h requested, profile 'kubelet-client' allows at most 8760h");
}

TEST_F(SignCsrTest, SignCsrFailsWithUnknownProfile) {
  ExpectRefused(Sign(KubeletClient(), "kubelet-superuser"), "unknown profile 'kubelet-superuser' (known: apiserver,");
}

TEST_F(SignCsrTest, SignCsrFailsWithUnknownCriticalExtension) {
  CsrRequest req = KubeletClient();
  req.unknown_critical = true;
  ExpectRefused(Sign(req, "kubelet-client"), "unknown critical extension 1.3.6.1.4.1.99999.1 in the request");
}

TEST_F(SignCsrTest, SignCsrFailsWithDuplicateExtensions) {
  CsrRequest req = KubeletClient("worker-1");
  req.sans = "DNS:worker-1";
  req.duplicate_san = true;
  ExpectRefused(Sign(req, "kubelet-serving"),
                "duplicate extensions: X509v3 Subject Alternative Name is requested more than once");
}

TEST_F(SignCsrTest, SignCsrFailsWithPolicyPatternMismatch) {
  kubehsm::testing::WriteTestFile(dir() / "policy.yaml", R"(apiVersion: kubehsm.io/v1alpha1
kind: SigningPolicy
profiles:
  - name: svc
    ca: ca
    subject: {commonName: '^svc-[a-z]+$'}
    extKeyUsages: [clientAuth]
    maxValidity: 24h
)");
  CsrRequest req;
  req.cn = "root";
  ExpectRefused(Sign(req, "svc", {"--policy", (dir() / "policy.yaml").string()}),
                "disallowed CN 'root': does not match '^svc-[a-z]+$' of profile 'svc'");
}

TEST_F(SignCsrTest, RefusalNeedsNoTokenLoginAndLeavesLedgerEmpty) {
  CsrRequest req = KubeletClient();
  req.ca_true = true;
  ASSERT_EQ(Sign(req, "kubelet-client").exit_code, 2);
  auto list = Kubehsm({"ledger", "list", "-o", "json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  // Only the three CA certificates of the fixture's `init phase ca`.
  EXPECT_EQ(std::count(list.out.begin(), list.out.end(), '{'), 3) << list.out;
}

}  // namespace
}  // namespace kubehsm::signer::pki
