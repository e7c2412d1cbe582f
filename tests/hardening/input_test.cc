// Hostile input against the real kubehsm binary (issue 8 item 3): oversized and deeply nested
// claims, a kubeadm config with 10 000 certSANs or deep nesting, non-UTF-8 bytes in names, and
// oversized CSRs. Each case is refused with one clear line, in bounded time (< 5 s) and bounded
// memory (peak RSS of the child from wait4 < 200 MiB), and writes nothing.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "tests/hardening/hardening_util.h"
#include "tests/support/test_env.h"

namespace kubehsm::hardening {
namespace {

using kubehsm::testing::RunProcess;
using kubehsm::testing::WriteTestFile;

constexpr double kMaxSeconds = 5;
constexpr long kMaxRssKib = 200 * 1024;

void ExpectBounded(const ChildRun& r) {
  EXPECT_FALSE(r.timed_out);
  EXPECT_LT(r.seconds, kMaxSeconds);
  EXPECT_LT(r.max_rss_kib, kMaxRssKib) << "peak RSS " << r.max_rss_kib << " KiB";
}

class InputTest : public HardeningTest {
 protected:
  fs::path Node() const { return dir() / "cp1"; }
  static std::string KubeadmHeader() {
    return "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: ECDSA-P256\n";
  }
  // `kubehsm init --config FILE` into Node(); must be refused without touching the token.
  void ExpectInitRefuses(const std::string& config, const std::string& message_part) {
    const fs::path file = dir() / "kubeadm.yaml";
    WriteTestFile(file, config);
    ChildRun r = Kubehsm({"init", "--config", file.string(), "--cert-dir", (Node() / "pki").string(), "--kubeconfig-dir",
                     Node().string(), "--node-name", "cp1", "--advertise-address", "192.0.2.1"});
    ExpectOneErrorLine(r, message_part);
    ExpectBounded(r);
    EXPECT_FALSE(fs::exists(Node() / "pki" / "ca.crt"));
    EXPECT_TRUE(KeyLabels().empty());
  }
  void CaPhase() {
    ChildRun ca = Kubehsm({"init", "phase", "ca", "--cert-dir", (Node() / "pki").string(), "--encryption-algorithm",
                      "ECDSA-P256"});
    ASSERT_EQ(ca.exit_code, 0) << ca.err;
  }
};

// --- sa sign --claims -------------------------------------------------------------------------------

TEST_F(InputTest, OneMebibyteClaimsFileIsRefused) {
  WriteTestFile(dir() / "big.json", "{\"iss\":\"x\",\"pad\":\"" + std::string(1 << 20, 'x') + "\"}");
  ChildRun r = Kubehsm({"sa", "sign", "--claims", (dir() / "big.json").string()});
  ExpectOneErrorLine(r, "larger than the limit");
  ExpectBounded(r);
  EXPECT_EQ(r.out, "");
}

TEST_F(InputTest, DeeplyNestedClaimsAreRefused) {
  for (const std::string& text : {std::string(30000, '[') + std::string(30000, ']'),
                                  [] {
                                    std::string s;
                                    for (int i = 0; i < 5000; ++i) s += "{\"a\":";
                                    return s + "1" + std::string(5000, '}');
                                  }()}) {
    WriteTestFile(dir() / "deep.json", text);
    ChildRun r = Kubehsm({"sa", "sign", "--claims", (dir() / "deep.json").string()});
    ExpectOneErrorLine(r, "nested too deeply");
    ExpectBounded(r);
    EXPECT_EQ(r.out, "");
  }
}

// --- kubeadm config ---------------------------------------------------------------------------------

// 10 000 certSANs would make a ~280 KB apiserver certificate that Go's TLS stack cannot send
// (handshake messages are limited to 64 KiB): refused before any key is created.
TEST_F(InputTest, TenThousandCertSansAreRefused) {
  std::string config = KubeadmHeader() + "apiServer:\n  certSANs:\n";
  for (int i = 0; i < 10000; ++i) config += "  - san" + std::to_string(i) + ".example.com\n";
  ExpectInitRefuses(config, "ClusterConfiguration.apiServer.certSANs");
  // The same through the flag (3 000: one argv string is limited to 128 KiB).
  std::string flag;
  for (int i = 0; i < 3000; ++i) flag += (i ? "," : "") + std::string("s") + std::to_string(i) + ".example";
  ChildRun r = Kubehsm(InitArgs(Node(), {"--apiserver-cert-extra-sans", flag}));
  ExpectOneErrorLine(r, "exceed the limit");
  ExpectBounded(r);
}

TEST_F(InputTest, DeeplyNestedKubeadmConfigIsRefused) {
  ExpectInitRefuses(KubeadmHeader() + "apiServer:\n  extraArgs: " + std::string(100000, '[') +
                        std::string(100000, ']') + "\n",
                    "nesting deeper than");
  std::string block = KubeadmHeader() + "networking:\n";
  std::string indent = "  ";
  for (int i = 0; i < 300; ++i, indent += " ") block += indent + "a:\n";
  ExpectInitRefuses(block, "nesting deeper than");
}

// --- non-UTF-8 names --------------------------------------------------------------------------------

TEST_F(InputTest, NonUtf8NodeNameIsRefused) {
  ChildRun r = Kubehsm({"init", "--cert-dir", (Node() / "pki").string(), "--kubeconfig-dir", Node().string(),
                        "--node-name", "cp\xff\xfe" "1", "--advertise-address", "192.0.2.1"});
  ExpectOneErrorLine(r, "nodeRegistration.name");
  ExpectBounded(r);
  EXPECT_FALSE(fs::exists(Node() / "pki" / "ca.crt"));
}

// PKCS#11 labels are UTF-8 (CKA_LABEL is an RFC 2279 string): kubehsm refuses to create others, and
// a key labelled with other bytes by another tool does not break `keys list -o json`.
TEST_F(InputTest, NonUtf8KeyLabelIsRefusedAndForeignOneIsListed) {
  ChildRun r = Kubehsm({"keys", "generate", "--label", "k\xff\xfe", "--type", "ecdsa-p256"});
  ExpectOneErrorLine(r, "valid UTF-8");
  ExpectBounded(r);
  EXPECT_TRUE(KeyLabels().empty());
  // The same bytes written by pkcs11-tool.
  auto foreign = RunProcess({"pkcs11-tool", "--module", KUBEHSM_DEFAULT_MODULE, "--token-label", token_.label(),
                             "--login", "--pin", token_.user_pin(), "--keypairgen", "--key-type", "EC:prime256v1",
                             "--label", "f\xff"},
                            env_);
  ASSERT_EQ(foreign.exit_code, 0) << foreign.err;
  ChildRun list = Kubehsm({"keys", "list", "-o", "json"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  auto j = nlohmann::json::parse(list.out, nullptr, false);
  ASSERT_TRUE(j.is_array()) << list.out;
  EXPECT_EQ(j.size(), 1u);
}

TEST_F(InputTest, NonUtf8NamespaceForSaSignIsRefused) {
  ChildRun r = Kubehsm({"sa", "sign", "--issuer", "https://k", "--namespace", "d\xff", "--service-account", "default",
                   "--uid", "00000000-0000-0000-0000-000000000001"});
  EXPECT_EQ(r.exit_code, 1) << r.err;  // a usage error
  EXPECT_NE(r.err.find("not a valid Kubernetes name"), std::string::npos) << r.err;
  ExpectBounded(r);
  EXPECT_EQ(r.out, "");
}

// --- CSRs -------------------------------------------------------------------------------------------

// A request with 10 000 SANs is over the 64 KiB CSR limit: refused before parsing.
TEST_F(InputTest, CsrWithTenThousandSansIsRefused) {
  CaPhase();
  std::string sans;
  for (int i = 0; i < 10000; ++i) sans += (i ? "," : "") + std::string("DNS:n") + std::to_string(i) + ".example";
  WriteTestFile(dir() / "san.cnf", "[req]\ndistinguished_name=dn\n[dn]\n[ext]\nsubjectAltName=" + sans + "\n");
  auto gen = RunProcess({"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                         "-keyout", (dir() / "k.key").string(), "-subj", "/O=system:nodes/CN=system:node:w1",
                         "-config", (dir() / "san.cnf").string(), "-reqexts", "ext", "-out",
                         (dir() / "many.csr").string()});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  ChildRun r = Kubehsm({"certs", "sign-csr", "--csr", (dir() / "many.csr").string(), "--profile", "kubelet-serving",
                   "--out", (dir() / "many.crt").string(), "--cert-dir", (Node() / "pki").string()});
  ExpectOneErrorLine(r, "larger than the limit");
  ExpectBounded(r);
  EXPECT_FALSE(fs::exists(dir() / "many.crt"));
}

}  // namespace
}  // namespace kubehsm::hardening
