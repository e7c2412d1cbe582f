// Joining control-plane nodes end to end with the real binary on a fresh SoftHSM token: `kubehsm
// certs issue --config join.yaml` (JoinConfiguration + the cluster's ClusterConfiguration) issues
// the joining node's set with its own name and address plus the cluster's controlPlaneEndpoint and
// certSANs, and says which files travel; `kubehsm certs sign-dir` with the control-plane-join node
// set signs exactly that set from generate-csr-shaped input (tests/pki/generate_csr_fixture.sh)
// and refuses the CSRs a joining node must not get. Certificates are read back with the openssl
// CLI.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <gtest/gtest.h>

#include "signer/pki/kubeconfig.h"
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

constexpr const char* kLeaves[] = {"apiserver", "apiserver-kubelet-client", "front-proxy-client",   "etcd/server",
                                   "etcd/peer", "etcd/healthcheck-client",  "apiserver-etcd-client"};
constexpr const char* kJoinConfs[] = {"admin.conf", "controller-manager.conf", "scheduler.conf"};

// The cluster's ClusterConfiguration, as the first node's kubeadm config has it.
constexpr char kClusterConfiguration[] = R"(apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.32.0
encryptionAlgorithm: ECDSA-P256
controlPlaneEndpoint: k8s-api.example.com:6443
apiServer:
  certSANs:
  - api.example.com
  - 10.100.1.1
)";

// The SANs generate-csr puts into the apiserver CSR for the cluster config above (beyond the
// node's own and the service ones the fixture always writes).
constexpr char kClusterApiserverSans[] = "DNS:k8s-api.example.com,DNS:api.example.com,IP:10.100.1.1";

// The subjectAltName extension of a certificate as `openssl x509 -ext subjectAltName` prints it.
std::string SansOf(const fs::path& cert) {
  ProcessResult r = RunProcess({"openssl", "x509", "-in", cert.string(), "-noout", "-ext", "subjectAltName"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out;
}

// The SAN entries ("DNS:cp2", "IP Address:192.0.2.3") of openssl's text.
std::vector<std::string> SanEntries(const std::string& text) {
  std::vector<std::string> out;
  const std::size_t nl = text.find('\n');
  std::string rest = nl == std::string::npos ? "" : text.substr(nl + 1);
  std::size_t start = 0;
  while (start < rest.size()) {
    std::size_t comma = rest.find(',', start);
    if (comma == std::string::npos) comma = rest.size();
    std::string e = rest.substr(start, comma - start);
    e.erase(0, e.find_first_not_of(" \n"));
    e.erase(e.find_last_not_of(" \n") + 1);
    if (!e.empty()) out.push_back(e);
    start = comma + 1;
  }
  return out;
}

bool Has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string HostName() {
  std::array<char, 256> buf{};
  gethostname(buf.data(), buf.size() - 1);
  std::string name(buf.data());
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  return name;
}

class JoinTest : public testutil::KubehsmCaFixture {
 protected:
  // A join file: the node's JoinConfiguration (control-plane unless `worker`) beside the cluster's
  // ClusterConfiguration.
  fs::path JoinConfig(const std::string& node, const std::string& address, bool worker = false) const {
    const fs::path p = dir() / ("join-" + node + ".yaml");
    std::string join =
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nnodeRegistration:\n  name: " + node +
        "\ndiscovery:\n  bootstrapToken:\n    token: abcdef.0123456789abcdef\n"
        "    apiServerEndpoint: k8s-api.example.com:6443\n    unsafeSkipCAVerification: true\n";
    if (!worker) {
      join += "controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: " + address +
              "\n  certificateKey: e6a2eb8581237ab72a4f494f30285ec12a9694d750b9785706a83bfcbbbd2204\n";
    }
    WriteTestFile(p, join + "---\n" + kClusterConfiguration);
    return p;
  }

  fs::path Node(const std::string& name) const { return dir() / name; }

  // What `kubeadm certs generate-csr` leaves on node `name` for the cluster config above, minus the
  // two kubeconfigs a joining control-plane node does not get (unless `keep_init_only`).
  void GenerateJoinCsrs(const std::string& name, const std::string& address, bool keep_init_only = false,
                        const std::string& extra_sans = kClusterApiserverSans) {
    ProcessResult r = RunProcess({"bash", (SourceDir() / "tests/pki/generate_csr_fixture.sh").string(),
                                  Node(name).string(), name, address, "ec", "32", extra_sans});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    if (keep_init_only) return;
    for (const char* conf : {"super-admin.conf", "kubelet.conf"}) {
      fs::remove(Node(name) / conf);
      fs::remove(Node(name) / (std::string(conf) + ".csr"));
    }
  }

  std::vector<std::string> SignDirArgs(const std::string& node, const fs::path& config) const {
    return {"certs",
            "sign-dir",
            "--config",
            config.string(),
            "--cert-dir",
            (Node(node) / "pki").string(),
            "--kubeconfig-dir",
            Node(node).string(),
            "--ca-dir",
            ca_dir().string()};
  }

  // Files with a .crt under the node's pki dir (CA certificates included).
  std::vector<std::string> CrtFiles(const std::string& node) const {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(Node(node) / "pki", ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->path().extension() == ".crt") out.push_back(fs::relative(it->path(), Node(node) / "pki").string());
    }
    return out;
  }
};

// `certs issue --config join.yaml` used to ignore the JoinConfiguration and issue for the signing
// box's own hostname and address.
TEST_F(JoinTest, CertsIssueWithJoinConfigIssuesForTheJoiningNode) {
  const fs::path out = Node("cp2-out");
  ProcessResult r =
      Kubehsm({"certs", "issue", "--config", JoinConfig("cp2", "192.0.2.3").string(), "--ca-dir", ca_dir().string(),
               "--cert-dir", (out / "pki").string(), "--kubeconfig-dir", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::vector<std::string> sans = SanEntries(SansOf(out / "pki/apiserver.crt"));
  for (const char* want :
       {"DNS:cp2", "IP Address:192.0.2.3", "DNS:k8s-api.example.com", "DNS:api.example.com", "IP Address:10.100.1.1",
        "DNS:kubernetes.default.svc.cluster.local", "IP Address:10.96.0.1"}) {
    EXPECT_TRUE(Has(sans, want)) << want << " missing from " << SansOf(out / "pki/apiserver.crt");
  }
  const std::string host = HostName();
  if (host != "cp2") {
    EXPECT_FALSE(Has(sans, "DNS:" + host))
        << "the signing box's hostname leaked into " << SansOf(out / "pki/apiserver.crt");
  }
  // etcd: the node's own name, as kubeadm join --control-plane makes them.
  ProcessResult subject =
      RunProcess({"openssl", "x509", "-in", (out / "pki/etcd/peer.crt").string(), "-noout", "-subject", "-nameopt",
                  "oneline"});  // one format on OpenSSL 3.0 and 3.5
  EXPECT_NE(subject.out.find("CN = cp2"), std::string::npos) << subject.out;
  EXPECT_TRUE(Has(SanEntries(SansOf(out / "pki/etcd/peer.crt")), "IP Address:192.0.2.3"));
  // The joining node's kubeconfigs only: no super-admin.conf, no kubelet.conf.
  for (const char* conf : kJoinConfs) EXPECT_TRUE(fs::exists(out / conf)) << conf;
  EXPECT_FALSE(fs::exists(out / "super-admin.conf"));
  EXPECT_FALSE(fs::exists(out / "kubelet.conf"));
  // No CA key anywhere in the output; the output says what travels and that leaf keys were made here.
  for (const char* ca : {"ca.key", "etcd/ca.key", "front-proxy-ca.key"})
    EXPECT_FALSE(fs::exists(out / "pki" / ca)) << ca;
  EXPECT_NE(r.out.find("Copy to node \"cp2\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find((out / "pki/apiserver.key").string()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("leaf private keys were generated on this signing box"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no CA private key exists on disk"), std::string::npos) << r.out;
  // The result passes pki verify with the same join file.
  ProcessResult verify = Kubehsm({"pki", "verify", "--cert-dir", (out / "pki").string(), "--kubeconfig-dir",
                                  out.string(), "--config", JoinConfig("cp2", "192.0.2.3").string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

TEST_F(JoinTest, JoinConfigWithUnknownFieldIsRefusedByEveryCommand) {
  const fs::path bad = dir() / "bad-join.yaml";
  WriteTestFile(bad, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nbogusField: 1\n---\n" +
                         std::string(kClusterConfiguration));
  const fs::path out = Node("out");
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"certs", "issue", "--config", bad.string(), "--ca-dir", ca_dir().string(), "--cert-dir",
            (out / "pki").string(), "--kubeconfig-dir", out.string()},
           {"certs", "sign-dir", "--config", bad.string(), "--cert-dir", (out / "pki").string(), "--kubeconfig-dir",
            out.string(), "--ca-dir", ca_dir().string()},
           {"pki", "verify", "--cert-dir", ca_dir().string(), "--config", bad.string()},
           {"init", "--config", bad.string(), "--cert-dir", (out / "pki").string(), "--kubeconfig-dir",
            out.string()}}) {
    ProcessResult r = Kubehsm(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << " " << args[1] << ": " << r.out << r.err;
    EXPECT_NE(r.err.find("unknown field \"JoinConfiguration.bogusField\" (line 3, column 1)"), std::string::npos)
        << args[0] << " " << args[1] << ": " << r.err;
  }
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(JoinTest, WorkerJoinConfigIsRefusedForControlPlaneCertificates) {
  const fs::path worker = JoinConfig("w1", "", /*worker=*/true);
  const fs::path out = Node("w1-out");
  ProcessResult issue = Kubehsm({"certs", "issue", "--config", worker.string(), "--ca-dir", ca_dir().string(),
                                 "--cert-dir", (out / "pki").string(), "--kubeconfig-dir", out.string()});
  EXPECT_EQ(issue.exit_code, 2) << issue.out << issue.err;
  EXPECT_NE(issue.err.find("it describes a worker node, which gets no control-plane certificates"), std::string::npos)
      << issue.err;
  EXPECT_FALSE(fs::exists(out / "pki/apiserver.crt"));
  GenerateJoinCsrs("w1", "192.0.2.9");
  ProcessResult sign = Kubehsm(SignDirArgs("w1", worker));
  EXPECT_EQ(sign.exit_code, 2) << sign.out << sign.err;
  EXPECT_NE(sign.err.find("describes a worker node"), std::string::npos) << sign.err;
  EXPECT_FALSE(fs::exists(Node("w1") / "pki/apiserver.crt"));
  ProcessResult verify = Kubehsm({"pki", "verify", "--cert-dir", ca_dir().string(), "--config", worker.string()});
  EXPECT_EQ(verify.exit_code, 2) << verify.out << verify.err;
  EXPECT_NE(verify.err.find("describes a worker node"), std::string::npos) << verify.err;
}

// sign-csr: a worker's join file names a node for its kubelet certificates, never for a
// control-plane profile.
TEST_F(JoinTest, SignCsrWithWorkerJoinConfigSignsKubeletServingButNoControlPlaneProfile) {
  const fs::path worker = JoinConfig("w1", "", /*worker=*/true);
  testutil::CsrRequest apiserver;
  apiserver.cn = "kube-apiserver";
  apiserver.sans = "DNS:w1,DNS:kubernetes";
  const fs::path apiserver_csr = WriteCsr("apiserver.csr", testutil::MakeCsr(apiserver));
  ProcessResult refused =
      Kubehsm({"certs", "sign-csr", "--csr", apiserver_csr.string(), "--profile", "apiserver", "--config",
               worker.string(), "--cert-dir", ca_dir().string(), "--out", (dir() / "apiserver.crt").string()});
  EXPECT_EQ(refused.exit_code, 2) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("describes a worker node"), std::string::npos) << refused.err;
  EXPECT_FALSE(fs::exists(dir() / "apiserver.crt"));

  testutil::CsrRequest serving;
  serving.cn = "system:node:w1";
  serving.orgs = {"system:nodes"};
  serving.sans = "DNS:w1";
  const fs::path serving_csr = WriteCsr("w1-serving.csr", testutil::MakeCsr(serving));
  ProcessResult ok =
      Kubehsm({"certs", "sign-csr", "--csr", serving_csr.string(), "--profile", "kubelet-serving", "--config",
               worker.string(), "--cert-dir", ca_dir().string(), "--out", (dir() / "w1-serving.crt").string()});
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_TRUE(Has(SanEntries(SansOf(dir() / "w1-serving.crt")), "DNS:w1"));
}

TEST_F(JoinTest, InitRefusesAJoinConfig) {
  const fs::path out = Node("init-out");
  ProcessResult r = Kubehsm({"init", "--config", JoinConfig("cp2", "192.0.2.3").string(), "--cert-dir",
                             (out / "pki").string(), "--kubeconfig-dir", out.string()});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("use 'kubehsm certs issue --config FILE'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out / "pki/apiserver.crt"));
}

// `sign-dir` used to insist on the full generate-csr set (super-admin.conf.csr: missing).
TEST_F(JoinTest, SignDirSignsTheControlPlaneJoinSetFromGenerateCsrOutput) {
  GenerateJoinCsrs("cp2", "192.0.2.3");
  const fs::path config = JoinConfig("cp2", "192.0.2.3");
  ProcessResult r = Kubehsm(SignDirArgs("cp2", config));  // the node set follows the JoinConfiguration
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("Done: 10 certificate(s) signed, 0 kept from an earlier run, 3 CA certificate(s) placed"),
            std::string::npos)
      << r.out;
  for (const char* leaf : kLeaves) {
    EXPECT_TRUE(fs::exists(Node("cp2") / "pki" / (std::string(leaf) + ".crt"))) << leaf;
  }
  for (const char* conf : kJoinConfs) {
    auto creds = ReadKubeconfig(ReadTestFile(Node("cp2") / conf));
    ASSERT_TRUE(creds.ok()) << conf << ": " << creds.status().message();
    EXPECT_FALSE(creds->client_cert_pem.empty()) << conf;
  }
  EXPECT_FALSE(fs::exists(Node("cp2") / "super-admin.conf"));
  EXPECT_FALSE(fs::exists(Node("cp2") / "kubelet.conf"));
  const std::vector<std::string> sans = SanEntries(SansOf(Node("cp2") / "pki/apiserver.crt"));
  for (const char* want :
       {"DNS:cp2", "IP Address:192.0.2.3", "DNS:k8s-api.example.com", "DNS:api.example.com", "IP Address:10.100.1.1"}) {
    EXPECT_TRUE(Has(sans, want)) << want;
  }
  // The same with the node set named explicitly, over the tar archives.
  GenerateJoinCsrs("cp3", "192.0.2.4");
  const fs::path in_tar = dir() / "cp3.tar";
  const fs::path out_tar = dir() / "cp3-signed.tar";
  // Packed as the README says: CSRs and kubeconfigs, the leaf keys stay on the node.
  ProcessResult tar = RunProcess({"bash", "-c",
                                  "cd \"$0\" && tar -cf \"$1\" pki/*.csr pki/etcd/*.csr admin.conf* "
                                  "controller-manager.conf* scheduler.conf*",
                                  Node("cp3").string(), in_tar.string()});
  ASSERT_EQ(tar.exit_code, 0) << tar.err;
  ProcessResult t = Kubehsm({"certs", "sign-dir", "--config", JoinConfig("cp3", "192.0.2.4").string(), "--node-set",
                             "control-plane-join", "--in-tar", in_tar.string(), "--out-tar", out_tar.string(),
                             "--ca-dir", ca_dir().string()});
  ASSERT_EQ(t.exit_code, 0) << t.out << t.err;
  ProcessResult list = RunProcess({"tar", "-tf", out_tar.string()});
  EXPECT_NE(list.out.find("pki/apiserver.crt"), std::string::npos) << list.out;
  EXPECT_EQ(list.out.find("super-admin.conf"), std::string::npos) << list.out;
  EXPECT_EQ(list.out.find(".key"), std::string::npos) << list.out;
}

TEST_F(JoinTest, SignDirJoinSetRefusesAnExtraSuperAdminCsrAndSignsNothing) {
  GenerateJoinCsrs("cp2", "192.0.2.3", /*keep_init_only=*/true);
  ProcessResult r = Kubehsm(SignDirArgs("cp2", JoinConfig("cp2", "192.0.2.3")));
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("super-admin.conf.csr: not part of the control-plane-join set"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("kubelet.conf.csr: not part of the control-plane-join set"), std::string::npos) << r.err;
  EXPECT_TRUE(CrtFiles("cp2").empty());
  auto creds = ReadKubeconfig(ReadTestFile(Node("cp2") / "super-admin.conf"));
  ASSERT_TRUE(creds.ok());
  EXPECT_TRUE(creds->client_cert_pem.empty()) << "super-admin.conf was signed";
  EXPECT_NE(ReadTestFile(audit_path()).find("super-admin.conf.csr"), std::string::npos);
}

TEST_F(JoinTest, SignDirRefusesAnApiserverCsrWithoutTheControlPlaneEndpoint) {
  GenerateJoinCsrs("cp2", "192.0.2.3", false, "DNS:api.example.com,IP:10.100.1.1");
  ProcessResult r = Kubehsm(SignDirArgs("cp2", JoinConfig("cp2", "192.0.2.3")));
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("apiserver.csr: lacks SANs the cluster config requires: DNS:k8s-api.example.com"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(CrtFiles("cp2").empty());
  // The same for the first node's full set under its InitConfiguration.
  GenerateJoinCsrs("cp1", "192.0.2.2", /*keep_init_only=*/true, "DNS:api.example.com,IP:10.100.1.1");
  const fs::path init_config = dir() / "kubeadm-cp1.yaml";
  WriteTestFile(init_config,
                "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: cp1\n"
                "localAPIEndpoint:\n  advertiseAddress: 192.0.2.2\n---\n" +
                    std::string(kClusterConfiguration));
  ProcessResult init = Kubehsm(SignDirArgs("cp1", init_config));
  EXPECT_EQ(init.exit_code, 2) << init.out << init.err;
  EXPECT_NE(init.err.find("apiserver.csr: lacks SANs the cluster config requires: DNS:k8s-api.example.com"),
            std::string::npos)
      << init.err;
  EXPECT_TRUE(CrtFiles("cp1").empty());
}

TEST_F(JoinTest, SignDirNodeSetFlagIsChecked) {
  GenerateJoinCsrs("cp2", "192.0.2.3");
  std::vector<std::string> args = SignDirArgs("cp2", JoinConfig("cp2", "192.0.2.3"));
  args.insert(args.end(), {"--node-set", "init"});
  ProcessResult init = Kubehsm(args);
  EXPECT_EQ(init.exit_code, 1) << init.out << init.err;
  EXPECT_NE(init.err.find("--config is a JoinConfiguration"), std::string::npos) << init.err;
  args.back() = "everything";
  ProcessResult bogus = Kubehsm(args);
  EXPECT_EQ(bogus.exit_code, 1) << bogus.out << bogus.err;
  EXPECT_NE(bogus.err.find("--node-set must be init or control-plane-join"), std::string::npos) << bogus.err;
  EXPECT_TRUE(CrtFiles("cp2").empty());
}

}  // namespace
}  // namespace kubehsm::signer::pki
