// Hostile media that reach the signing box (security issue #14, items 5, 6, 8, 10, 12, 13): the
// real kubehsm binary on a fresh SoftHSM token with the CAs in place, fed requests and files made
// to crash, stall, mislead or out-trick it. Each test is the attack as reported and checks the
// refusal contract: exit 2, one error line naming the problem, a csr-refused audit record where a
// CSR is refused, no output file, nothing left behind.
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "tests/pki/csr_test_util.h"
#include "tests/support/test_env.h"

namespace kubehsm::signer::pki {
namespace {

namespace fs = std::filesystem;
using kubehsm::testing::ProcessResult;
using kubehsm::testing::ReadTestFile;
using kubehsm::testing::RunProcess;
using kubehsm::testing::SourceDir;
using kubehsm::testing::WriteTestFile;

// An RSA "key pair" with the modulus of a real 2048-bit key, e = 1 and d = 1: its signature of a
// message is the padded message itself, so anyone can forge it without any private key.
EvpPkeyPtr RsaKeyWithExponentOne() {
  EvpPkeyPtr real = testutil::NewKey("rsa-2048");
  BIGNUM* n_raw = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(real.get(), OSSL_PKEY_PARAM_RSA_N, &n_raw), 1);
  BigNumPtr n(n_raw);
  BigNumPtr one(BN_new());
  BN_one(one.get());
  OsslParamBldPtr bld(OSSL_PARAM_BLD_new());
  OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get());
  OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, one.get());
  OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_D, one.get());
  OsslParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* key = nullptr;
  EXPECT_EQ(EVP_PKEY_fromdata_init(ctx.get()), 1);
  EXPECT_EQ(EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_KEYPAIR, params.get()), 1);
  return EvpPkeyPtr(key);
}

// A CSR signed by `key` whose CN and O are stored as UTF8String without OpenSSL's length limits
// (so a test can send what a hostile tool would: a 45 000-character CN, escape bytes).
std::string RawCsr(EVP_PKEY* key, const std::string& cn, const std::vector<std::string>& orgs) {
  X509ReqPtr req(X509_REQ_new());
  X509_REQ_set_version(req.get(), X509_REQ_VERSION_1);
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  for (const auto& o : orgs) {
    EXPECT_EQ(
        X509_NAME_add_entry_by_NID(name, NID_organizationName, V_ASN1_UTF8STRING,
                                   reinterpret_cast<const unsigned char*>(o.data()), static_cast<int>(o.size()), -1, 0),
        1);
  }
  EXPECT_EQ(
      X509_NAME_add_entry_by_NID(name, NID_commonName, V_ASN1_UTF8STRING,
                                 reinterpret_cast<const unsigned char*>(cn.data()), static_cast<int>(cn.size()), -1, 0),
      1);
  X509_REQ_set_pubkey(req.get(), key);
  EXPECT_GT(X509_REQ_sign(req.get(), key, EVP_sha256()), 0);
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), req.get());
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string PublicKeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_PUBKEY(bio.get(), key), 1);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

class HostileInputTest : public testutil::KubehsmCaFixture {
 protected:
  fs::path out() const { return dir() / "out.crt"; }

  ProcessResult SignCsr(const fs::path& csr, const std::string& profile, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"certs", "sign-csr", "--csr",        csr.string(), "--profile",
                                     profile, "--out",    out().string(), "--cert-dir", ca_dir().string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return Kubehsm(args);
  }

  // The refusal contract of a CSR.
  void ExpectRefused(const ProcessResult& r, const std::string& message) {
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_NE(r.err.find("kubehsm: error: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(out())) << "a refused CSR must not produce a file";
    const std::string audit = ReadTestFile(audit_path());
    EXPECT_NE(audit.find("\"event\":\"csr-refused\""), std::string::npos) << audit;
    EXPECT_NE(audit.find(message), std::string::npos) << "the audit record carries the reason";
  }

  // A CSR made by the openssl CLI with `-addext` extensions (and an optional config file).
  fs::path OpensslCsr(const std::string& name, const std::string& subject, const std::vector<std::string>& addext,
                      const std::string& config = "") {
    std::vector<std::string> args = {"openssl",
                                     "req",
                                     "-new",
                                     "-newkey",
                                     "ec",
                                     "-pkeyopt",
                                     "ec_paramgen_curve:P-256",
                                     "-nodes",
                                     "-keyout",
                                     (dir() / (name + ".key")).string(),
                                     "-subj",
                                     subject,
                                     "-out",
                                     (dir() / name).string()};
    for (const auto& e : addext) {
      args.push_back("-addext");
      args.push_back(e);
    }
    if (!config.empty()) {
      WriteTestFile(dir() / (name + ".cnf"), config);
      args.push_back("-config");
      args.push_back((dir() / (name + ".cnf")).string());
    }
    auto r = RunProcess(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return dir() / name;
  }

  fs::path Policy(const std::string& yaml) const {
    WriteTestFile(dir() / "policy.yaml", "apiVersion: kubehsm.io/v1alpha1\nkind: SigningPolicy\n" + yaml);
    return dir() / "policy.yaml";
  }

  // The node side of sign-dir: generate-csr's layout for node cp1 and the config it used.
  fs::path GenerateCsrs(const fs::path& node) {
    auto r = RunProcess({"bash", (SourceDir() / "tests/pki/generate_csr_fixture.sh").string(), node.string(), "cp1",
                         "192.0.2.1", "ec"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const fs::path config = dir() / "kubeadm.yaml";
    WriteTestFile(config,
                  "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: cp1\n"
                  "localAPIEndpoint:\n  advertiseAddress: 192.0.2.1\n---\napiVersion: kubeadm.k8s.io/v1beta4\n"
                  "kind: ClusterConfiguration\nencryptionAlgorithm: ECDSA-P256\n");
    return config;
  }
};

// ---- item 5: every GeneralName type is handled by type -------------------------------------------

TEST_F(HostileInputTest, OtherNameSanIsRefusedByTypeNotCrash) {
  const fs::path csr =
      OpensslCsr("other.csr", "/O=system:nodes/CN=system:node:w1", {"subjectAltName=otherName:1.2.3.4;UTF8:x"});
  ExpectRefused(SignCsr(csr, "kubelet-client"), "disallowed SAN: otherName names are not supported (only DNS and IP)");
}

TEST_F(HostileInputTest, DirectoryNameSanIsRefusedByTypeNotCrash) {
  const fs::path csr = OpensslCsr("dir.csr", "/O=system:nodes/CN=system:node:w1", {"subjectAltName=dirName:dir_sect"},
                                  "[req]\ndistinguished_name=dn\n[dn]\n[dir_sect]\nCN=evil\nO=system:masters\n");
  ExpectRefused(SignCsr(csr, "kubelet-client"),
                "disallowed SAN: directoryName names are not supported (only DNS and IP)");
}

TEST_F(HostileInputTest, SignDirInTarWithOtherNameSanRefusesAndLeavesNoTempDir) {
  const fs::path node = dir() / "node";
  const fs::path config = GenerateCsrs(node);
  const fs::path evil = OpensslCsr("evil.csr", "/CN=kube-apiserver-kubelet-client/O=kubeadm:cluster-admins",
                                   {"subjectAltName=otherName:1.2.3.4;UTF8:x,dirName:dir_sect"},
                                   "[req]\ndistinguished_name=dn\n[dn]\n[dir_sect]\nCN=evil\n");
  fs::copy_file(evil, node / "pki/apiserver-kubelet-client.csr", fs::copy_options::overwrite_existing);
  ASSERT_EQ(RunProcess({"tar", "-C", node.string(), "-cf", (dir() / "csrs.tar").string(), "."}).exit_code, 0);
  const fs::path tmp = dir() / "tmp";
  fs::create_directories(tmp);
  std::map<std::string, std::string> env = this->env();
  env["TMPDIR"] = tmp.string();
  auto r = RunProcess(
      KubehsmArgv({"certs", "sign-dir", "--config", config.string(), "--in-tar", (dir() / "csrs.tar").string(),
                   "--out-tar", (dir() / "signed.tar").string(), "--ca-dir", ca_dir().string()}),
      env);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("otherName names are not supported"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("directoryName names are not supported"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_TRUE(fs::is_empty(tmp)) << "the working directory must be removed";
  EXPECT_FALSE(fs::exists(dir() / "signed.tar"));
  EXPECT_NE(ReadTestFile(audit_path()).find("otherName names are not supported"), std::string::npos);
}

// ---- item 6: policy patterns run in linear time, after the length limits --------------------------

constexpr const char* kReadmePattern = R"('^[a-z0-9-]+\.apps\.example\.com$')";

TEST_F(HostileInputTest, HugeCommonNameUnderPolicyPatternIsRefusedQuickly) {
  const fs::path policy = Policy(
      std::string("profiles:\n  - name: ingress\n    ca: ca\n    subject:\n      commonName: ") + kReadmePattern +
      "\n      organizations: [" + kReadmePattern + "]\n    extKeyUsages: [serverAuth]\n    maxValidity: 720h\n");
  EvpPkeyPtr key = testutil::NewKey("ec-p256");
  const std::string huge(45000, 'a');
  WriteTestFile(dir() / "huge.csr", RawCsr(key.get(), huge, {}));
  const auto start = std::chrono::steady_clock::now();
  auto r = SignCsr(dir() / "huge.csr", "ingress", {"--policy", policy.string()});
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ExpectRefused(r, "disallowed CN: longer than 64 characters");
  EXPECT_LT(elapsed, std::chrono::seconds(2)) << "refused in well under a second (generous bound)";
  EXPECT_LT(r.err.size(), 2000u) << "the error line does not echo the 45 000 characters";

  // The same for an O value (not length-checked before the pattern before the fix).
  fs::remove(audit_path());
  WriteTestFile(dir() / "huge-o.csr", RawCsr(key.get(), "shop.apps.example.com", {huge}));
  const auto start_o = std::chrono::steady_clock::now();
  auto ro = SignCsr(dir() / "huge-o.csr", "ingress", {"--policy", policy.string()});
  EXPECT_LT(std::chrono::steady_clock::now() - start_o, std::chrono::seconds(2));
  ExpectRefused(ro, "disallowed O: longer than 64 characters");
}

TEST_F(HostileInputTest, NestedQuantifierPatternRunsInLinearTime) {
  const fs::path policy = Policy(
      "profiles:\n  - name: nested\n    ca: ca\n    subject:\n      commonName: "
      "'^([a-z0-9-]+\\.?)+\\.apps\\.example\\.com$'\n    extKeyUsages: [serverAuth]\n    maxValidity: 720h\n");
  EvpPkeyPtr key = testutil::NewKey("ec-p256");
  const std::string cn = std::string(60, 'a') + "!";  // backtracking engines explore 2^60 splits
  WriteTestFile(dir() / "nested.csr", RawCsr(key.get(), cn, {}));
  const auto start = std::chrono::steady_clock::now();
  auto r = SignCsr(dir() / "nested.csr", "nested", {"--policy", policy.string()});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  ExpectRefused(r, "disallowed CN '" + cn + "': does not match '^([a-z0-9-]+");
  EXPECT_NE(r.err.find(R"(does not match '^([a-z0-9-]+\.?)+\.apps\.example\.com$' of profile 'nested')"),
            std::string::npos)
      << r.err;
}

TEST_F(HostileInputTest, PolicyWithBackReferenceIsRefusedNamingRe2) {
  const fs::path policy = Policy(
      "profiles:\n  - name: br\n    ca: ca\n    subject:\n      commonName: '^(a)\\1$'\n    extKeyUsages: "
      "[serverAuth]\n    maxValidity: 720h\n");
  const fs::path csr = OpensslCsr("br.csr", "/CN=aa", {});
  auto r = SignCsr(csr, "br", {"--policy", policy.string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("profiles[0] (br).subject.commonName[0]: invalid regular expression '^(a)\\1$'"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("RE2 syntax: no back-references"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out()));
}

// ---- item 8: kubelet-serving only for nodes the operator allows -----------------------------------

testutil::CsrRequest Serving(const std::string& node, const std::string& sans) {
  testutil::CsrRequest r;
  r.cn = "system:node:" + node;
  r.orgs = {"system:nodes"};
  r.sans = sans;
  return r;
}

constexpr const char* kKubeletPolicy =
    "kubeletServing:\n  nodes: [worker-1]\n  nodePatterns: ['^.*$']\n  domains: [nodes.example.org]\n";

TEST_F(HostileInputTest, KubeletServingWithoutAllowListIsRefusedSayingHowToAllow) {
  const fs::path csr = WriteCsr("w1.csr", testutil::MakeCsr(Serving("worker-1", "DNS:worker-1")));
  ExpectRefused(SignCsr(csr, "kubelet-serving"),
                "profile 'kubelet-serving' needs the allowed nodes: add a kubeletServing section (nodes, nodePatterns, "
                "domains) to --policy, or give the node's kubeadm config with --config");
}

TEST_F(HostileInputTest, KubeletServingRefusesKubernetesServiceNamesEvenWhenAPatternAllowsAll) {
  const fs::path policy = Policy(kKubeletPolicy);
  const fs::path csr = WriteCsr(
      "k.csr",
      testutil::MakeCsr(Serving("kubernetes", "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local")));
  auto r = SignCsr(csr, "kubelet-serving", {"--policy", policy.string()});
  ExpectRefused(r, "disallowed node name 'kubernetes' for profile 'kubelet-serving': a Kubernetes service name");
  EXPECT_NE(r.err.find("disallowed SAN DNS:kubernetes.default.svc:"), std::string::npos) << r.err;
}

TEST_F(HostileInputTest, KubeletServingRefusesIpLikeNodeNames) {
  const fs::path policy = Policy(kKubeletPolicy);
  const fs::path csr = WriteCsr("ip.csr", testutil::MakeCsr(Serving("10", "DNS:10.0.0.1")));
  auto r = SignCsr(csr, "kubelet-serving", {"--policy", policy.string()});
  ExpectRefused(
      r, "disallowed node name '10' for profile 'kubelet-serving': an IP-like name (its last label is all digits)");
  EXPECT_NE(r.err.find("disallowed SAN DNS:10.0.0.1:"), std::string::npos) << r.err;
}

TEST_F(HostileInputTest, KubeletServingRefusesNamesOutsideTheAllowedDomainsAndNodes) {
  const fs::path policy = Policy("kubeletServing:\n  nodes: [worker-1]\n  domains: [nodes.example.org]\n");
  // A node the policy does not list, and a public name under an allowed node's prefix.
  ExpectRefused(
      SignCsr(
          WriteCsr("ms.csr", testutil::MakeCsr(Serving("login.microsoftonline.com", "DNS:login.microsoftonline.com"))),
          "kubelet-serving", {"--policy", policy.string()}),
      "disallowed node 'login.microsoftonline.com': profile 'kubelet-serving' allows only the nodes of "
      "--policy's kubeletServing");
  fs::remove(audit_path());
  ExpectRefused(SignCsr(WriteCsr("w1x.csr", testutil::MakeCsr(Serving("worker-1", "DNS:worker-1.evil.com"))),
                        "kubelet-serving", {"--policy", policy.string()}),
                "disallowed SAN DNS:worker-1.evil.com: profile 'kubelet-serving' allows only the node's own name "
                "(worker-1) or <node>.<domain> for kubeletServing.domains nodes.example.org");
}

TEST_F(HostileInputTest, KubeletServingSignsAnAllowedNodeUnderAnAllowedDomain) {
  const fs::path policy = Policy("kubeletServing:\n  nodes: [worker-1]\n  domains: [nodes.example.org]\n");
  const fs::path csr = WriteCsr(
      "ok.csr", testutil::MakeCsr(Serving("worker-1", "DNS:worker-1,DNS:worker-1.nodes.example.org,IP:192.0.2.10")));
  auto r = SignCsr(csr, "kubelet-serving", {"--policy", policy.string(), "--node-ip", "192.0.2.10"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto verify = RunProcess(
      {"openssl", "verify", "-CAfile", (ca_dir() / "ca.crt").string(), "-purpose", "sslserver", out().string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  const std::string text = RunProcess({"openssl", "x509", "-in", out().string(), "-noout", "-text"}).out;
  EXPECT_NE(text.find("DNS:worker-1, DNS:worker-1.nodes.example.org, IP Address:192.0.2.10"), std::string::npos)
      << text;
}

TEST_F(HostileInputTest, KubeletServingAllowsTheNodeOfTheGivenKubeadmConfig) {
  WriteTestFile(dir() / "kubeadm.yaml",
                "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: worker-2\n"
                "localAPIEndpoint:\n  advertiseAddress: 192.0.2.1\n");
  const std::string config = (dir() / "kubeadm.yaml").string();
  auto r = SignCsr(WriteCsr("w2.csr", testutil::MakeCsr(Serving("worker-2", "DNS:worker-2"))), "kubelet-serving",
                   {"--config", config});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  fs::remove(out());
  ExpectRefused(SignCsr(WriteCsr("w3.csr", testutil::MakeCsr(Serving("worker-3", "DNS:worker-3"))), "kubelet-serving",
                        {"--config", config}),
                "disallowed node 'worker-3': profile 'kubelet-serving' allows only the nodes of --policy's "
                "kubeletServing and --config's node 'worker-2'");
}

TEST_F(HostileInputTest, KubeadmConfigWithPublicSuffixWildcardIsRefusedUnlessAllowed) {
  for (const std::string wildcard : {"*.com", "*.co.uk"}) {
    WriteTestFile(dir() / "kubeadm.yaml",
                  "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: cp1\n"
                  "localAPIEndpoint:\n  advertiseAddress: 192.0.2.1\n---\napiVersion: kubeadm.k8s.io/v1beta4\n"
                  "kind: ClusterConfiguration\napiServer:\n  certSANs: ['" +
                      wildcard + "']\n");
    const fs::path csr = OpensslCsr("api.csr", "/CN=kube-apiserver", {"subjectAltName=DNS:kubernetes,DNS:" + wildcard});
    auto r = SignCsr(csr, "apiserver", {"--config", (dir() / "kubeadm.yaml").string()});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(
        r.err.find("ClusterConfiguration.apiServer.certSANs[0]\": wildcard \"" + wildcard + "\" covers every name"),
        std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("refused unless --allow-public-suffix-wildcards is given"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out()));
    // With the operator's explicit opt-in the config loads (the CSR is then judged on its merits).
    auto allowed =
        SignCsr(csr, "apiserver", {"--config", (dir() / "kubeadm.yaml").string(), "--allow-public-suffix-wildcards"});
    EXPECT_EQ(allowed.err.find("allow-public-suffix-wildcards"), std::string::npos) << allowed.err;
    fs::remove(out());
  }
}

// ---- item 10: weak public keys wherever a key enters ----------------------------------------------

TEST_F(HostileInputTest, CsrWithRsaExponentOneIsRefused) {
  EvpPkeyPtr key = RsaKeyWithExponentOne();
  WriteTestFile(dir() / "e1.csr", RawCsr(key.get(), "system:node:w1", {"system:nodes"}));
  ExpectRefused(SignCsr(dir() / "e1.csr", "kubelet-client"),
                "weak key: RSA public exponent 1 is not allowed (it must be odd and at least 65537)");
}

TEST_F(HostileInputTest, CsrWithExplicitCurveParametersIsRefused) {
  ASSERT_EQ(RunProcess({"openssl", "ecparam", "-name", "prime256v1", "-param_enc", "explicit", "-genkey", "-noout",
                        "-out", (dir() / "explicit.key").string()})
                .exit_code,
            0);
  ASSERT_EQ(RunProcess({"openssl", "req", "-new", "-key", (dir() / "explicit.key").string(), "-subj",
                        "/O=system:nodes/CN=system:node:w1", "-out", (dir() / "explicit.csr").string()})
                .exit_code,
            0);
  ExpectRefused(SignCsr(dir() / "explicit.csr", "kubelet-client"),
                "weak key: EC key with explicit curve parameters (only named curves are allowed, RFC 5480");
}

TEST_F(HostileInputTest, SaImportPublicRefusesRsaExponentOne) {
  EvpPkeyPtr key = RsaKeyWithExponentOne();
  WriteTestFile(dir() / "e1.pub", PublicKeyPem(key.get()));
  auto r = Kubehsm({"sa", "import-public", "--public-key", (dir() / "e1.pub").string(),
                    "--confirm-key-outside-token", "--expires-in", "30d"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("RSA public exponent 1 is not allowed"), std::string::npos) << r.err;
  auto jwks = Kubehsm({"sa", "jwks"});
  ASSERT_EQ(jwks.exit_code, 0) << jwks.err;
  EXPECT_EQ(jwks.out.find("\"AQ\""), std::string::npos) << "no e=1 key published: " << jwks.out;
}

TEST_F(HostileInputTest, SaVerifyRefusesAJwksKeyWithExponentOneAndItsForgedToken) {
  const std::string issuer = "https://kubernetes.default.svc.cluster.local";
  auto real =
      Kubehsm({"sa", "sign", "--issuer", issuer, "--audience", "api", "--namespace", "default", "--service-account",
               "builder", "--uid", "7d1c0000-0000-0000-0000-000000000001", "--expiration-seconds", "3600"});
  ASSERT_EQ(real.exit_code, 0) << real.err;
  const std::string token = real.out.substr(0, real.out.find_last_not_of("\n") + 1);
  const std::string payload = token.substr(token.find('.') + 1, token.rfind('.') - token.find('.') - 1);
  // The forger: a JWKS with e = 1 and a "signature" made without any private key (d = 1).
  EvpPkeyPtr key = RsaKeyWithExponentOne();
  BIGNUM* n_raw = nullptr;
  ASSERT_EQ(EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_RSA_N, &n_raw), 1);
  BigNumPtr n(n_raw);
  std::string n_bytes(static_cast<std::size_t>(BN_num_bytes(n.get())), '\0');
  BN_bn2bin(n.get(), reinterpret_cast<unsigned char*>(n_bytes.data()));
  WriteTestFile(dir() / "jwks.json", nlohmann::json{{"keys",
                                                     {{{"kty", "RSA"},
                                                       {"kid", "forged"},
                                                       {"use", "sig"},
                                                       {"alg", "RS256"},
                                                       {"n", Base64UrlEncode(n_bytes)},
                                                       {"e", "AQ"}}}}}
                                         .dump());
  const std::string signing_input = Base64UrlEncode(R"({"alg":"RS256","kid":"forged","typ":"JWT"})") + "." + payload;
  EvpMdCtxPtr md(EVP_MD_CTX_new());
  ASSERT_EQ(EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, key.get()), 1);
  std::size_t sig_len = 0;
  ASSERT_EQ(EVP_DigestSign(md.get(), nullptr, &sig_len, reinterpret_cast<const unsigned char*>(signing_input.data()),
                           signing_input.size()),
            1);
  std::string sig(sig_len, '\0');
  ASSERT_EQ(EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(sig.data()), &sig_len,
                           reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()),
            1);
  sig.resize(sig_len);
  WriteTestFile(dir() / "forged.jwt", signing_input + "." + Base64UrlEncode(sig));
  auto r = Kubehsm({"sa", "verify", "--issuer", issuer, "--audience", "api", "--jwks", (dir() / "jwks.json").string(),
                    (dir() / "forged.jwt").string()});
  EXPECT_NE(r.exit_code, 0) << "a token forged without a private key must never verify: " << r.out;
  EXPECT_NE(r.err.find("RSA public exponent 1 is not allowed"), std::string::npos) << r.err;
  // The same key as a PEM (--public-key) is refused too.
  WriteTestFile(dir() / "e1.pub", PublicKeyPem(key.get()));
  auto pem = Kubehsm({"sa", "verify", "--issuer", issuer, "--audience", "api", "--public-key",
                      (dir() / "e1.pub").string(), (dir() / "forged.jwt").string()});
  EXPECT_NE(pem.exit_code, 0) << pem.out;
  EXPECT_NE(pem.err.find("RSA public exponent 1 is not allowed"), std::string::npos) << pem.err;
}

// ---- item 12: input-derived strings are escaped when printed --------------------------------------

TEST_F(HostileInputTest, TerminalEscapesInARefusedCsrArePrintedEscaped) {
  EvpPkeyPtr key = testutil::NewKey("ec-p256");
  WriteTestFile(dir() / "esc.csr", RawCsr(key.get(), "system:node:w1\x1b[2J\x1b]0;owned\x07", {"system:nodes"}));
  auto r = SignCsr(dir() / "esc.csr", "kubelet-client");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << "raw ESC reached the terminal";
  EXPECT_EQ(r.err.find('\x07'), std::string::npos) << "raw BEL reached the terminal";
  EXPECT_NE(r.err.find("system:node:w1\\x1b[2J\\x1b]0;owned\\x07"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_F(HostileInputTest, TerminalEscapesInTheLedgerArePrintedEscapedAndJsonStaysValid) {
  const fs::path policy = Policy(
      "profiles:\n  - name: any\n    ca: ca\n    subject:\n      commonName: '^evil.*$'\n    extKeyUsages: "
      "[clientAuth]\n    maxValidity: 24h\n");
  EvpPkeyPtr key = testutil::NewKey("ec-p256");
  const std::string cn = "evil\x1b[31mRED\r\x1b[2K";
  WriteTestFile(dir() / "evil.csr", RawCsr(key.get(), cn, {}));
  auto r = SignCsr(dir() / "evil.csr", "any", {"--policy", policy.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("evil\\x1b[31mRED\\x0d\\x1b[2K"), std::string::npos) << r.out;
  auto table = Kubehsm({"ledger", "list"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_EQ(table.out.find('\x1b'), std::string::npos) << table.out;
  EXPECT_EQ(table.out.find('\r'), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("\\x1b[31mRED\\x0d\\x1b[2K"), std::string::npos) << table.out;
  auto json = Kubehsm({"ledger", "list", "-o", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(json.out.find('\x1b'), std::string::npos) << json.out;
  const auto parsed = nlohmann::json::parse(json.out);
  bool found = false;
  for (const auto& row : parsed) found |= row["subject"].get<std::string>().find(cn) != std::string::npos;
  EXPECT_TRUE(found) << "the JSON keeps the exact subject, escaped as JSON: " << json.out;
}

TEST_F(HostileInputTest, TerminalEscapesInSignDirRefusedLinesArePrintedEscaped) {
  const fs::path node = dir() / "node";
  const fs::path config = GenerateCsrs(node);
  EvpPkeyPtr key = testutil::NewKey("ec-p256");
  WriteTestFile(
      node / "pki/apiserver-kubelet-client.csr",
      RawCsr(key.get(), "kube-apiserver-kubelet-client\x1b[1A\x1b[2K[sign-dir] Done", {"kubeadm:cluster-admins"}));
  auto r = Kubehsm({"certs", "sign-dir", "--config", config.string(), "--cert-dir", (node / "pki").string(),
                    "--kubeconfig-dir", node.string(), "--ca-dir", ca_dir().string()});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("[sign-dir] REFUSED " + (node / "pki/apiserver-kubelet-client.csr").string() +
                       ": disallowed CN 'kube-apiserver-kubelet-client\\x1b[1A\\x1b[2K[sign-dir] Done'"),
            std::string::npos)
      << r.out;
}

// ---- item 13: only regular files are read from the media -----------------------------------------

TEST_F(HostileInputTest, FifoInSignDirInputIsRefusedWithoutHanging) {
  const fs::path node = dir() / "node";
  const fs::path config = GenerateCsrs(node);
  for (const std::string name : {"pki/front-proxy-client.csr", "pki/apiserver.key", "admin.conf"}) {
    fs::remove(node / name);
    ASSERT_EQ(::mkfifo((node / name).c_str(), 0600), 0) << name;
  }
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::string> argv = {"timeout", "30"};
  for (const auto& a :
       KubehsmArgv({"certs", "sign-dir", "--config", config.string(), "--cert-dir", (node / "pki").string(),
                    "--kubeconfig-dir", node.string(), "--ca-dir", ca_dir().string()})) {
    argv.push_back(a);
  }
  auto r = RunProcess(argv, env());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 2) << "124 means it hung: " << r.out << r.err;
  for (const std::string name : {"pki/front-proxy-client.csr", "pki/apiserver.key", "admin.conf"}) {
    EXPECT_NE(r.out.find("REFUSED " + (node / name).string() + ": " + (node / name).string() +
                         " is a FIFO, not a regular file"),
              std::string::npos)
        << name << "\n"
        << r.out;
  }
  EXPECT_FALSE(fs::exists(node / "pki/apiserver.crt")) << "nothing is signed in a refused run";
}

TEST_F(HostileInputTest, FifoAsSignDirArchiveIsRefusedWithoutHanging) {
  const fs::path config = GenerateCsrs(dir() / "node");
  ASSERT_EQ(::mkfifo((dir() / "csrs.tar").c_str(), 0600), 0);
  std::vector<std::string> argv = {"timeout", "30"};
  for (const auto& a :
       KubehsmArgv({"certs", "sign-dir", "--config", config.string(), "--in-tar", (dir() / "csrs.tar").string(),
                    "--out-tar", (dir() / "signed.tar").string(), "--ca-dir", ca_dir().string()})) {
    argv.push_back(a);
  }
  auto r = RunProcess(argv, env());
  EXPECT_EQ(r.exit_code, 2) << "124 means it hung: " << r.out << r.err;
  EXPECT_NE(r.err.find("csrs.tar is a FIFO, not a regular file"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir() / "signed.tar"));
}

}  // namespace
}  // namespace kubehsm::signer::pki
