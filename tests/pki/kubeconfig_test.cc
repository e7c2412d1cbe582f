// Tests for signer/pki/kubeconfig: client-go layout, reading, in-place credential updates, and
// acceptance of the results by kubectl.
#include "signer/pki/kubeconfig.h"

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "common/base64.h"
#include "tests/support/test_env.h"

namespace kubehsm::signer::pki {
namespace {

constexpr char kCaPem[] = "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n";
constexpr char kCertPem[] = "-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n";
constexpr char kKeyPem[] = "-----BEGIN EC PRIVATE KEY-----\nS0VZ\n-----END EC PRIVATE KEY-----\n";
constexpr char kNewCertPem[] = "-----BEGIN CERTIFICATE-----\nTkVX\n-----END CERTIFICATE-----\n";

// base64 of the PEMs above, computed independently (Python's base64.b64encode).
constexpr char kCaB64[] = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tClEwRT0KLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=";
constexpr char kCertB64[] = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tClEwVlNWQT09Ci0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K";
constexpr char kKeyB64[] = "LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tClMwVloKLS0tLS1FTkQgRUMgUFJJVkFURSBLRVktLS0tLQo=";
constexpr char kNewCertB64[] = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tClRrVlgKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=";

KubeconfigSpec AdminSpec() {
  KubeconfigSpec s;
  s.cluster_name = "kubernetes";
  s.server = "https://10.0.0.10:6443";
  s.ca_pem = kCaPem;
  s.user_name = "kubernetes-admin";
  s.client_cert_pem = kCertPem;
  s.client_key_pem = kKeyPem;
  return s;
}

std::string AdminConf() {
  return std::string("apiVersion: v1\n"
                     "clusters:\n"
                     "- cluster:\n"
                     "    certificate-authority-data: ") + kCaB64 + "\n"
         "    server: https://10.0.0.10:6443\n"
         "  name: kubernetes\n"
         "contexts:\n"
         "- context:\n"
         "    cluster: kubernetes\n"
         "    user: kubernetes-admin\n"
         "  name: kubernetes-admin@kubernetes\n"
         "current-context: kubernetes-admin@kubernetes\n"
         "kind: Config\n"
         "preferences: {}\n"
         "users:\n"
         "- name: kubernetes-admin\n"
         "  user:\n"
         "    client-certificate-data: " + kCertB64 + "\n"
         "    client-key-data: " + kKeyB64 + "\n";
}

TEST(KubeconfigTest, RenderMatchesClientGoLayoutByteForByte) { EXPECT_EQ(RenderKubeconfig(AdminSpec()), AdminConf()); }

TEST(KubeconfigTest, RenderKubeletConfLeavesColonNamesPlain) {
  KubeconfigSpec s = AdminSpec();
  s.user_name = "system:node:cp1";
  s.server = "https://[fd00::10]:6443";
  const std::string text = RenderKubeconfig(s);
  EXPECT_NE(text.find("    user: system:node:cp1\n  name: system:node:cp1@kubernetes\n"), std::string::npos) << text;
  EXPECT_NE(text.find("current-context: system:node:cp1@kubernetes\n"), std::string::npos);
  EXPECT_NE(text.find("    server: https://[fd00::10]:6443\n"), std::string::npos);
  EXPECT_NE(text.find("users:\n- name: system:node:cp1\n"), std::string::npos);
}

TEST(KubeconfigTest, RenderQuotesNamesLikeGoYaml) {
  KubeconfigSpec s = AdminSpec();
  s.cluster_name = "true";  // would read back as a boolean
  s.user_name = "#admin";   // would start a comment
  const std::string text = RenderKubeconfig(s);
  EXPECT_NE(text.find("  name: \"true\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("- name: '#admin'\n"), std::string::npos) << text;
  EXPECT_NE(text.find("current-context: '#admin@true'\n"), std::string::npos) << text;
  auto back = ReadKubeconfig(text);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->cluster_name, "true");
  EXPECT_EQ(back->user_name, "#admin");
}

TEST(KubeconfigTest, RenderOmitsEmptyDataFields) {
  // What `kubeadm certs generate-csr` writes: only client-key-data.
  KubeconfigSpec s = AdminSpec();
  s.ca_pem.clear();
  s.client_cert_pem.clear();
  const std::string text = RenderKubeconfig(s);
  EXPECT_EQ(text.find("certificate-authority-data"), std::string::npos);
  EXPECT_EQ(text.find("client-certificate-data"), std::string::npos);
  EXPECT_NE(text.find("- cluster:\n    server: https://10.0.0.10:6443\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  user:\n    client-key-data: " + std::string(kKeyB64) + "\n"), std::string::npos) << text;
  s.client_key_pem.clear();
  EXPECT_NE(RenderKubeconfig(s).find("  user: {}\n"), std::string::npos);
}

TEST(KubeconfigTest, RenderWritesToken) {
  KubeconfigSpec s = AdminSpec();
  s.client_cert_pem.clear();
  s.client_key_pem.clear();
  s.token = "abcdef.0123456789abcdef";
  EXPECT_NE(RenderKubeconfig(s).find("  user:\n    token: abcdef.0123456789abcdef\n"), std::string::npos);
}

TEST(KubeconfigTest, ReadReturnsCurrentContextCredentials) {
  auto c = ReadKubeconfig(AdminConf());
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->current_context, "kubernetes-admin@kubernetes");
  EXPECT_EQ(c->cluster_name, "kubernetes");
  EXPECT_EQ(c->server, "https://10.0.0.10:6443");
  EXPECT_EQ(c->ca_pem, kCaPem);
  EXPECT_EQ(c->user_name, "kubernetes-admin");
  EXPECT_EQ(c->client_cert_pem, kCertPem);
  EXPECT_EQ(c->client_key_pem, kKeyPem);
  EXPECT_TRUE(c->ca_file.empty());
}

TEST(KubeconfigTest, ReadPicksCurrentContextAmongMany) {
  const std::string text = std::string(R"(apiVersion: v1
kind: Config
current-context: b
clusters:
- name: one
  cluster: {server: "https://one:6443"}
- name: two
  cluster:
    server: https://two:6443
    certificate-authority: /etc/ca.crt
contexts:
- name: a
  context: {cluster: one, user: u1}
- name: b
  context: {cluster: two, user: u2, namespace: ns}
users:
- name: u1
  user: {token: t1}
- name: u2
  user:
    client-certificate: /etc/u2.crt
    client-key-data: )") + kKeyB64 + "\n";
  auto c = ReadKubeconfig(text);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->server, "https://two:6443");
  EXPECT_EQ(c->ca_file, "/etc/ca.crt");
  EXPECT_EQ(c->client_cert_file, "/etc/u2.crt");
  EXPECT_EQ(c->client_key_pem, kKeyPem);
  EXPECT_TRUE(c->client_cert_pem.empty());
}

void ExpectReadFails(const std::string& text, const std::string& fragment) {
  auto c = ReadKubeconfig(text);
  ASSERT_FALSE(c.ok()) << text;
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find(fragment), std::string::npos) << c.status().message();
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  const std::size_t p = s.find(from);
  EXPECT_NE(p, std::string::npos) << from;
  if (p != std::string::npos) s.replace(p, from.size(), to);
  return s;
}

TEST(KubeconfigTest, ReadFailsWithoutCurrentContext) {
  ExpectReadFails(Replace(AdminConf(), "current-context: kubernetes-admin@kubernetes\n", ""), "current-context");
}

TEST(KubeconfigTest, ReadFailsOnMissingContext) {
  ExpectReadFails(Replace(AdminConf(), "current-context: kubernetes-admin@kubernetes", "current-context: other"),
                  "context \"other\" is not listed");
}

TEST(KubeconfigTest, ReadFailsOnMissingCluster) {
  ExpectReadFails(Replace(AdminConf(), "    cluster: kubernetes\n", "    cluster: prod\n"), "cluster \"prod\" is not listed");
}

TEST(KubeconfigTest, ReadFailsOnMissingUser) {
  ExpectReadFails(Replace(AdminConf(), "- name: kubernetes-admin\n", "- name: someone-else\n"),
                  "user \"kubernetes-admin\" is not listed");
}

TEST(KubeconfigTest, ReadFailsOnMissingServer) {
  ExpectReadFails(Replace(AdminConf(), "    server: https://10.0.0.10:6443\n", ""), "has no server");
}

TEST(KubeconfigTest, ReadFailsOnBadBase64) {
  ExpectReadFails(Replace(AdminConf(), kKeyB64, "not*base64"), "client-key-data");
}

TEST(KubeconfigTest, ReadFailsOnInvalidYaml) {
  ExpectReadFails("apiVersion: v1\nclusters: [\n", "line");
  ExpectReadFails(AdminConf() + "---\n" + AdminConf(), "exactly one");
  ExpectReadFails("just a string\n", "not a mapping");
}

// A repeated key is read differently by yaml-cpp (first wins) and by client-go (last wins, see
// KubectlTakesTheLastOfDuplicatedKeys), so both reading and updating refuse it.
TEST(KubeconfigTest, ReadAndUpdateRefuseDuplicatedKeys) {
  const std::string cluster_twice =
      Replace(AdminConf(), "contexts:\n", "clusters:\n- cluster:\n    server: https://evil:6443\n  name: kubernetes\ncontexts:\n");
  const std::string server_twice =
      Replace(AdminConf(), "    server: https://10.0.0.10:6443\n", "    server: https://10.0.0.10:6443\n    server: https://evil:6443\n");
  for (const std::string& text : {cluster_twice, server_twice}) {
    ExpectReadFails(text, "duplicate key");
    auto r = UpdateKubeconfigCredentials(text, kNewCertPem, std::string_view(kKeyPem), std::string_view(kCaPem));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("duplicate key"), std::string::npos) << r.status().message();
  }
  ExpectReadFails(server_twice, "duplicate key \"server\" at line 6");
}

// Found by fuzz/kubeconfig_fuzzer: `{a, : b}` has a null key, which reading ignored and writing
// back could not express. Non-string keys are refused on reading.
TEST(KubeconfigTest, ReadAndUpdateRefuseNonStringKeys) {
  for (const std::string& key : {std::string(": x"), std::string("? [a, b]\n  : x"), std::string("? {a: b}\n  : x")}) {
    const std::string text = Replace(AdminConf(), "  name: kubernetes\n", "  name: kubernetes\n  " + key + "\n");
    ExpectReadFails(text, "mapping key at line");
    EXPECT_FALSE(UpdateKubeconfigCredentials(text, kNewCertPem).ok());
  }
}

TEST(KubeconfigTest, UpdateOfRenderedFileEqualsRenderOfNewValues) {
  auto updated = UpdateKubeconfigCredentials(AdminConf(), kNewCertPem, std::string_view(kKeyPem), std::nullopt);
  ASSERT_TRUE(updated.ok()) << updated.status().message();
  KubeconfigSpec s = AdminSpec();
  s.client_cert_pem = kNewCertPem;
  EXPECT_EQ(*updated, RenderKubeconfig(s));
  EXPECT_NE(updated->find(kNewCertB64), std::string::npos);
}

TEST(KubeconfigTest, UpdateFillsGenerateCsrKubeconfig) {
  KubeconfigSpec csr_only = AdminSpec();
  csr_only.ca_pem.clear();
  csr_only.client_cert_pem.clear();
  auto updated = UpdateKubeconfigCredentials(RenderKubeconfig(csr_only), kCertPem, std::nullopt, std::string_view(kCaPem));
  ASSERT_TRUE(updated.ok()) << updated.status().message();
  // New keys land in client-go's sorted order, so the result is exactly what kubeadm writes.
  EXPECT_EQ(*updated, AdminConf());
}

TEST(KubeconfigTest, UpdatePreservesEverythingElse) {
  const std::string text = std::string(R"(# edited by hand
apiVersion: v1
kind: Config
current-context: admin@kubernetes
preferences: {colors: true}
clusters:
- name: kubernetes
  cluster:
    server: https://lb.example.com:6443
    certificate-authority: /etc/kubernetes/pki/ca.crt
    insecure-skip-tls-verify: false
    extensions:
    - name: ext
      extension: {a: 1, b: "2"}
- name: other
  cluster: {server: "https://other:6443"}
contexts:
- name: admin@kubernetes
  context: {cluster: kubernetes, user: admin, namespace: "007"}
users:
- name: admin
  user:
    client-key: /etc/kubernetes/admin.key
    client-certificate: /etc/kubernetes/admin.crt
    exec: null
- name: bot
  user:
    token: "yes"
)");
  auto updated = UpdateKubeconfigCredentials(text, kNewCertPem, std::string_view(kKeyPem), std::string_view(kCaPem));
  ASSERT_TRUE(updated.ok()) << updated.status().message();
  auto c = ReadKubeconfig(*updated);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->client_cert_pem, kNewCertPem);
  EXPECT_EQ(c->client_key_pem, kKeyPem);
  EXPECT_EQ(c->ca_pem, kCaPem);
  // The file references the new data replaces are gone; nothing else is.
  EXPECT_TRUE(c->client_cert_file.empty());
  EXPECT_TRUE(c->client_key_file.empty());
  EXPECT_TRUE(c->ca_file.empty());
  for (const char* kept : {"insecure-skip-tls-verify: false", "extension:", "a: 1", "b: \"2\"", "namespace: \"007\"",
                           "token: \"yes\"", "server: https://other:6443", "colors: true", "exec: null",
                           "server: https://lb.example.com:6443"}) {
    EXPECT_NE(updated->find(kept), std::string::npos) << kept << " missing in\n" << *updated;
  }
}

TEST(KubeconfigTest, UpdateFailsOnEmptyCertificate) {
  auto r = UpdateKubeconfigCredentials(AdminConf(), "", std::nullopt, std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST(KubeconfigTest, UpdateFailsOnBrokenKubeconfig) {
  auto r = UpdateKubeconfigCredentials(Replace(AdminConf(), "- name: kubernetes-admin\n", "- name: x\n"), kNewCertPem);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not listed"), std::string::npos);
}

// kubectl (client-go) must load what we write and see the same bytes.
std::string KubectlField(const std::filesystem::path& file, const std::string& jsonpath) {
  auto r = testing::RunProcess({"kubectl", "config", "view", "--kubeconfig", file.string(), "--raw", "-o",
                                "jsonpath=" + jsonpath});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out;
}

bool HaveKubectl() { return testing::RunProcess({"kubectl", "version", "--client"}).exit_code == 0; }

TEST(KubeconfigTest, KubectlAcceptsRenderedFile) {
  ASSERT_TRUE(HaveKubectl()) << "kubectl is missing; scripts/install-deps installs it";
  testing::TempDir dir;
  KubeconfigSpec s = AdminSpec();
  s.user_name = "system:node:cp1";
  const auto file = dir.path() / "kubelet.conf";
  testing::WriteTestFile(file, RenderKubeconfig(s));
  EXPECT_EQ(KubectlField(file, "{.current-context}"), "system:node:cp1@kubernetes");
  EXPECT_EQ(KubectlField(file, "{.clusters[0].cluster.server}"), "https://10.0.0.10:6443");
  EXPECT_EQ(KubectlField(file, "{.clusters[0].cluster.certificate-authority-data}"), kCaB64);
  EXPECT_EQ(KubectlField(file, "{.users[0].user.client-certificate-data}"), kCertB64);
  EXPECT_EQ(KubectlField(file, "{.users[0].user.client-key-data}"), kKeyB64);
  // kubectl's own re-serialisation (client-go) of our file is our file.
  auto view = testing::RunProcess({"kubectl", "config", "view", "--kubeconfig", file.string(), "--raw"});
  ASSERT_EQ(view.exit_code, 0) << view.err;
  EXPECT_EQ(view.out, RenderKubeconfig(s));
}

TEST(KubeconfigTest, KubectlAcceptsUpdatedFile) {
  ASSERT_TRUE(HaveKubectl()) << "kubectl is missing; scripts/install-deps installs it";
  testing::TempDir dir;
  KubeconfigSpec csr_only = AdminSpec();
  csr_only.ca_pem.clear();
  csr_only.client_cert_pem.clear();
  auto updated = UpdateKubeconfigCredentials(RenderKubeconfig(csr_only), kNewCertPem, std::nullopt, std::string_view(kCaPem));
  ASSERT_TRUE(updated.ok()) << updated.status().message();
  const auto file = dir.path() / "admin.conf";
  testing::WriteTestFile(file, *updated);
  EXPECT_EQ(KubectlField(file, "{.users[0].user.client-certificate-data}"), kNewCertB64);
  EXPECT_EQ(KubectlField(file, "{.users[0].user.client-key-data}"), kKeyB64);
  EXPECT_EQ(KubectlField(file, "{.clusters[0].cluster.certificate-authority-data}"), kCaB64);
}

TEST(KubeconfigTest, KubectlTakesTheLastOfDuplicatedKeys) {
  ASSERT_TRUE(HaveKubectl()) << "kubectl is missing; scripts/install-deps installs it";
  testing::TempDir dir;
  const auto file = dir.path() / "dup.conf";
  testing::WriteTestFile(file, Replace(AdminConf(), "    server: https://10.0.0.10:6443\n",
                                       "    server: https://10.0.0.10:6443\n    server: https://evil:6443\n"));
  // The ambiguity ReadAndUpdateRefuseDuplicatedKeys guards against: yaml-cpp would see the first.
  EXPECT_EQ(KubectlField(file, "{.clusters[0].cluster.server}"), "https://evil:6443");
}

TEST(KubeconfigTest, KubectlRejectsCorruptedDataLikeWeDo) {
  ASSERT_TRUE(HaveKubectl()) << "kubectl is missing; scripts/install-deps installs it";
  testing::TempDir dir;
  const std::string bad = Replace(AdminConf(), kKeyB64, "QQ");
  const auto file = dir.path() / "bad.conf";
  testing::WriteTestFile(file, bad);
  EXPECT_NE(testing::RunProcess({"kubectl", "config", "view", "--kubeconfig", file.string()}).exit_code, 0);
  EXPECT_FALSE(ReadKubeconfig(bad).ok());
}

}  // namespace
}  // namespace kubehsm::signer::pki
