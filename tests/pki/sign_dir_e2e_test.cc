// The air-gapped workflow end to end with the real binary on a fresh SoftHSM token:
// `kubehsm certs sign-dir` over a full `kubeadm certs generate-csr` layout built with the openssl
// CLI (tests/pki/generate_csr_fixture.sh documents how it mirrors kubeadm), checked by
// `kubehsm pki verify`, `openssl verify` and `kubectl config view`; tar in/out; whole-run refusal;
// the issuance ledger after a mixed run, after SIGKILL mid-run and under two concurrent processes;
// and `kubehsm audit verify` on a real run's audit log after tampering, deletion and truncation.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "ledger/ledger.h"
#include "signer/pki/kubeconfig.h"
#include "signer/pki/pem.h"
#include "tests/pki/csr_test_util.h"
#include "tests/support/test_env.h"

extern char** environ;

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
constexpr const char* kConfs[] = {"admin.conf", "super-admin.conf", "kubelet.conf", "controller-manager.conf",
                                  "scheduler.conf"};

// The serial as the ledger stores it (openssl's form: upper-case hex, whole bytes) of a PEM certificate.
std::string SerialOf(const std::string& pem) {
  auto cert = ParseCertificatePem(pem);
  EXPECT_TRUE(cert.ok()) << cert.status().message();
  if (!cert.ok()) return "";
  BigNumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert->get()), nullptr));
  char* hex = BN_bn2hex(bn.get());
  std::string s = ledger::NormalizeSerialHex(hex);
  OPENSSL_free(hex);
  return s;
}

class SignDirTest : public testutil::KubehsmCaFixture {
 protected:
  fs::path Node(const std::string& name = "node") const { return dir() / name; }

  // The node side: `kubeadm certs generate-csr --cert-dir <node>/pki --kubeconfig-dir <node>`.
  // `minor` is the kubeadm 1.<minor> mirrored (the tests about something else pin 1.32).
  void GenerateCsrs(const fs::path& node, const std::string& node_name = "cp1", int minor = 32) {
    auto r = RunProcess({"bash", (SourceDir() / "tests/pki/generate_csr_fixture.sh").string(), node.string(), node_name,
                         "192.0.2.1", "ec", std::to_string(minor)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  // The kubeadm config the node ran generate-csr with.
  fs::path Config(const std::string& node_name = "cp1", const std::string& version = "v1.32.0") const {
    const fs::path p = dir() / ("kubeadm-" + node_name + ".yaml");
    WriteTestFile(
        p, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: " + node_name +
               "\nlocalAPIEndpoint:\n  advertiseAddress: 192.0.2.1\n---\napiVersion: kubeadm.k8s.io/v1beta4\n"
               "kind: ClusterConfiguration\nencryptionAlgorithm: ECDSA-P256\nkubernetesVersion: " +
               version + "\n");
    return p;
  }
  std::vector<std::string> SignDirArgs(const fs::path& node, const std::string& node_name = "cp1") const {
    return {"certs",
            "sign-dir",
            "--config",
            Config(node_name).string(),
            "--cert-dir",
            (node / "pki").string(),
            "--kubeconfig-dir",
            node.string(),
            "--ca-dir",
            ca_dir().string()};
  }
  ProcessResult SignDir(const fs::path& node, const std::string& node_name = "cp1") {
    return Kubehsm(SignDirArgs(node, node_name));
  }

  // Every certificate that reached disk under `node`: leaves and kubeconfig client certificates.
  std::map<std::string, std::string> CertsOnDisk(const fs::path& node) {
    std::map<std::string, std::string> pems;
    for (const char* leaf : kLeaves) {
      const fs::path p = node / "pki" / (std::string(leaf) + ".crt");
      if (fs::exists(p)) pems[leaf] = ReadTestFile(p);
    }
    for (const char* conf : kConfs) {
      auto creds = ReadKubeconfig(ReadTestFile(node / conf));
      EXPECT_TRUE(creds.ok()) << conf << ": " << creds.status().message();
      if (creds.ok() && !creds->client_cert_pem.empty()) pems[conf] = creds->client_cert_pem;
    }
    return pems;
  }

  Result<std::vector<ledger::IssuanceRecord>> LedgerRows() {
    KH_ASSIGN_OR_RETURN(auto l, ledger::Ledger::Open(ledger_path()));
    return l->List();
  }
};

TEST_F(SignDirTest, SignsFullGenerateCsrLayoutForKubeadmExternalCaMode) {
  GenerateCsrs(Node());
  auto r = SignDir(Node());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("Done: 12 certificate(s) signed, 0 kept from an earlier run, 3 CA certificate(s) placed"),
            std::string::npos)
      << r.out;
  // External-CA layout: CA certificates without keys.
  for (const char* ca : {"ca", "etcd/ca", "front-proxy-ca"}) {
    EXPECT_EQ(ReadTestFile(Node() / "pki" / (std::string(ca) + ".crt")),
              ReadTestFile(ca_dir() / (std::string(ca) + ".crt")));
    EXPECT_FALSE(fs::exists(Node() / "pki" / (std::string(ca) + ".key"))) << ca;
  }
  auto verify = Kubehsm({"pki", "verify", "--cert-dir", (Node() / "pki").string(), "--kubeconfig-dir", Node().string(),
                         "--config", Config().string(), "--check-token"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_EQ(verify.out.find("FAIL"), std::string::npos) << verify.out;
  // Independent verification: each leaf under the CA kubeadm expects.
  const std::map<std::string, std::string> ca_of = {{"apiserver", "ca"},
                                                    {"apiserver-kubelet-client", "ca"},
                                                    {"front-proxy-client", "front-proxy-ca"},
                                                    {"etcd/server", "etcd/ca"},
                                                    {"etcd/peer", "etcd/ca"},
                                                    {"etcd/healthcheck-client", "etcd/ca"},
                                                    {"apiserver-etcd-client", "etcd/ca"}};
  for (const auto& [leaf, ca] : ca_of) {
    auto v = RunProcess({"openssl", "verify", "-CAfile", (Node() / "pki" / (ca + ".crt")).string(),
                         (Node() / "pki" / (leaf + ".crt")).string()});
    EXPECT_EQ(v.exit_code, 0) << leaf << ": " << v.out << v.err;
    // The wrong CA must not verify it.
    const std::string other = ca == "ca" ? "etcd/ca" : "ca";
    v = RunProcess({"openssl", "verify", "-CAfile", (Node() / "pki" / (other + ".crt")).string(),
                    (Node() / "pki" / (leaf + ".crt")).string()});
    EXPECT_NE(v.exit_code, 0) << leaf << " verified under " << other;
  }
  for (const char* conf : kConfs) {
    // kubectl parses it and it is complete: server, CA, client certificate and key.
    auto view = RunProcess({"kubectl", "config", "view", "--raw", "--kubeconfig", (Node() / conf).string(), "-o",
                            "jsonpath={.clusters[0].cluster.certificate-authority-data} "
                            "{.users[0].user.client-certificate-data} {.users[0].user.client-key-data} "
                            "{.clusters[0].cluster.server}"});
    ASSERT_EQ(view.exit_code, 0) << conf << ": " << view.err;
    std::istringstream fields(view.out);
    std::string ca, cert, key, server;
    fields >> ca >> cert >> key >> server;
    EXPECT_FALSE(ca.empty() || cert.empty() || key.empty()) << conf << ": " << view.out;
    EXPECT_EQ(server, "https://192.0.2.1:6443") << conf;
    auto creds = ReadKubeconfig(ReadTestFile(Node() / conf));
    ASSERT_TRUE(creds.ok());
    WriteTestFile(dir() / "client.crt", creds->client_cert_pem);
    auto v = RunProcess({"openssl", "verify", "-CAfile", (ca_dir() / "ca.crt").string(), "-purpose", "sslclient",
                         (dir() / "client.crt").string()});
    EXPECT_EQ(v.exit_code, 0) << conf << ": " << v.out << v.err;
  }
  // Every certificate is in the ledger with the right profile and operation.
  auto rows = LedgerRows();
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  std::map<std::string, ledger::IssuanceRecord> by_serial;
  for (const auto& row : *rows) by_serial[row.serial_hex] = row;
  for (const auto& [name, pem] : CertsOnDisk(Node())) {
    auto it = by_serial.find(SerialOf(pem));
    ASSERT_NE(it, by_serial.end()) << name << " is not in the ledger";
    EXPECT_EQ(it->second.operation, "sign-dir");
    EXPECT_EQ(it->second.cert_pem, pem) << name;
  }
}

// kubeadm-versions.md: apiserver-kubelet-client is O=kubeadm:cluster-admins + CN up to 1.35 and CN
// only in 1.36. sign-dir accepts the CSR that matches the config's kubernetesVersion and refuses
// the other one, for every supported minor; the signed certificate carries the subject of the
// config's version, and `pki verify --config` agrees.
TEST_F(SignDirTest, ApiserverKubeletClientCsrSubjectFollowsTheConfigsKubernetesVersion) {
  for (int csr_minor : {35, 36}) {
    for (int config_minor : {32, 33, 34, 35, 36}) {
      const std::string label = "csr-1." + std::to_string(csr_minor) + "-config-1." + std::to_string(config_minor);
      SCOPED_TRACE(label);
      const fs::path node = Node(label);
      GenerateCsrs(node, "cp1", csr_minor);
      const std::string config = Config("cp1", "v1." + std::to_string(config_minor) + ".0").string();
      auto r = Kubehsm({"certs", "sign-dir", "--config", config, "--cert-dir", (node / "pki").string(),
                        "--kubeconfig-dir", node.string(), "--ca-dir", ca_dir().string()});
      const bool csr_has_o = csr_minor <= 35;
      const bool config_wants_o = config_minor <= 35;
      if (csr_has_o == config_wants_o) {
        ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
        auto cert = ParseCertificatePem(ReadTestFile(node / "pki" / "apiserver-kubelet-client.crt"));
        ASSERT_TRUE(cert.ok()) << cert.status().message();
        auto subject = RunProcess({"openssl", "x509", "-noout", "-subject", "-nameopt", "oneline", "-in",
                                   (node / "pki" / "apiserver-kubelet-client.crt").string()});
        ASSERT_EQ(subject.exit_code, 0) << subject.err;
        EXPECT_EQ(subject.out, config_wants_o
                                   ? "subject=O = kubeadm:cluster-admins, CN = kube-apiserver-kubelet-client\n"
                                   : "subject=CN = kube-apiserver-kubelet-client\n");
        auto verify = Kubehsm({"pki", "verify", "--cert-dir", (node / "pki").string(), "--kubeconfig-dir",
                               node.string(), "--config", config});
        EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
      } else {
        EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
        const std::string want =
            config_wants_o ? "apiserver-kubelet-client.csr: disallowed O []: profile 'apiserver-kubelet-client' "
                             "requires [kubeadm:cluster-admins]"
                           : "apiserver-kubelet-client.csr: disallowed O [kubeadm:cluster-admins]: profile "
                             "'apiserver-kubelet-client' requires []";
        EXPECT_NE(r.err.find(want), std::string::npos) << r.err;
        EXPECT_FALSE(fs::exists(node / "pki" / "apiserver-kubelet-client.crt"));
        EXPECT_FALSE(fs::exists(node / "pki" / "apiserver.crt")) << "a refused run signs nothing";
      }
    }
  }
}

TEST_F(SignDirTest, SignsTarArchiveInAndOut) {
  GenerateCsrs(Node());
  ASSERT_EQ(RunProcess({"tar", "-C", Node().string(), "-cf", (dir() / "csrs.tar").string(), "."}).exit_code, 0);
  auto r = Kubehsm({"certs", "sign-dir", "--config", Config().string(), "--in-tar", (dir() / "csrs.tar").string(),
                    "--out-tar", (dir() / "signed.tar").string(), "--ca-dir", ca_dir().string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // Back on the node: unpack over the generate-csr directory, as the README tells.
  ASSERT_EQ(RunProcess({"tar", "-C", Node().string(), "-xf", (dir() / "signed.tar").string()}).exit_code, 0);
  auto listing = RunProcess({"tar", "-tf", (dir() / "signed.tar").string()});
  EXPECT_EQ(listing.out.find(".key"), std::string::npos) << "no key travels back: " << listing.out;
  auto verify = Kubehsm({"pki", "verify", "--cert-dir", (Node() / "pki").string(), "--kubeconfig-dir", Node().string(),
                         "--config", Config().string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

TEST_F(SignDirTest, SignDirFailsWithUnsafeArchiveMember) {
  // A symlink and a path escaping the directory: refused, nothing extracted anywhere.
  const std::string script = R"(
import io, sys, tarfile
with tarfile.open(sys.argv[1], 'w') as t:
    data = b'not a csr'
    info = tarfile.TarInfo('../escape.csr'); info.size = len(data); t.addfile(info, io.BytesIO(data))
with tarfile.open(sys.argv[2], 'w') as t:
    info = tarfile.TarInfo('pki/apiserver.csr'); info.type = tarfile.SYMTYPE; info.linkname = '/etc/passwd'
    t.addfile(info)
)";
  WriteTestFile(dir() / "mk.py", script);
  ASSERT_EQ(
      RunProcess({"python3", (dir() / "mk.py").string(), (dir() / "dots.tar").string(), (dir() / "link.tar").string()})
          .exit_code,
      0);
  for (const auto& [tar, message] : std::vector<std::pair<std::string, std::string>>{
           {"dots.tar", "member '../escape.csr' leaves the directory ('..')"},
           {"link.tar", "member 'pki/apiserver.csr' is a symbolic link"}}) {
    auto r = Kubehsm({"certs", "sign-dir", "--config", Config().string(), "--in-tar", (dir() / tar).string(),
                      "--out-tar", (dir() / "signed.tar").string(), "--ca-dir", ca_dir().string()});
    EXPECT_EQ(r.exit_code, 2) << r.out;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir() / "signed.tar"));
    EXPECT_FALSE(fs::exists(dir().parent_path() / "escape.csr"));
  }
}

TEST_F(SignDirTest, SignDirRefusesWholeRunAndListsEveryProblem) {
  GenerateCsrs(Node());
  // Two bad CSRs among twelve good ones: an apiserver CSR asking for a name the config does not
  // give, and an etcd peer CSR for another node.
  testutil::CsrRequest apiserver;
  apiserver.cn = "kube-apiserver";
  apiserver.sans = "DNS:kubernetes,DNS:evil.example.com";
  WriteTestFile(Node() / "pki/apiserver.csr", testutil::MakeCsr(apiserver));
  fs::remove(Node() / "pki/apiserver.key");  // leaf keys may stay on the node
  testutil::CsrRequest peer;
  peer.cn = "cp2";
  peer.sans = "DNS:cp2,IP:192.0.2.1";
  WriteTestFile(Node() / "pki/etcd/peer.csr", testutil::MakeCsr(peer));
  fs::remove(Node() / "pki/etcd/peer.key");
  auto r = SignDir(Node());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("refusing to sign anything: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("apiserver.csr: disallowed SAN DNS:evil.example.com"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("peer.csr: disallowed CN 'cp2': profile 'etcd-peer' requires 'cp1'"), std::string::npos)
      << r.err;
  // Nothing signed, nothing placed, nothing recorded.
  for (const char* leaf : kLeaves) EXPECT_FALSE(fs::exists(Node() / "pki" / (std::string(leaf) + ".crt"))) << leaf;
  EXPECT_TRUE(CertsOnDisk(Node()).empty());
  auto rows = LedgerRows();
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->size(), 3u) << "only the fixture's CA certificates";
  const std::string audit = ReadTestFile(audit_path());
  EXPECT_NE(audit.find("evil.example.com"), std::string::npos);
  EXPECT_NE(audit.find("disallowed CN 'cp2'"), std::string::npos);
}

TEST_F(SignDirTest, LedgerHoldsExactlyOneRowPerIssuedCertificateAfterMixedRun) {
  // init (3 CAs are already there from the fixture; its leaves and kubeconfigs use them) ...
  auto init =
      Kubehsm({"init", "--cert-dir", ca_dir().string(), "--kubeconfig-dir", (dir() / "box").string(), "--node-name",
               "signer", "--advertise-address", "127.0.0.1", "--encryption-algorithm", "ECDSA-P256"});
  ASSERT_EQ(init.exit_code, 0) << init.err;
  // ... renew everything, sign one CSR and a whole generate-csr directory.
  auto renew =
      Kubehsm({"certs", "renew", "all", "--cert-dir", ca_dir().string(), "--kubeconfig-dir", (dir() / "box").string()});
  ASSERT_EQ(renew.exit_code, 0) << renew.err;
  testutil::CsrRequest kubelet;
  kubelet.cn = "system:node:w1";
  kubelet.orgs = {"system:nodes"};
  const fs::path csr = WriteCsr("w1.csr", testutil::MakeCsr(kubelet));
  auto one = Kubehsm({"certs", "sign-csr", "--csr", csr.string(), "--profile", "kubelet-client", "--out",
                      (dir() / "w1.crt").string(), "--cert-dir", ca_dir().string()});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  GenerateCsrs(Node());
  auto dir_run = SignDir(Node());
  ASSERT_EQ(dir_run.exit_code, 0) << dir_run.err;

  auto rows = LedgerRows();
  ASSERT_TRUE(rows.ok());
  std::map<std::string, int> per_operation;
  std::set<std::string> serials;
  for (const auto& row : *rows) {
    ++per_operation[row.operation];
    EXPECT_TRUE(serials.insert(row.serial_hex).second) << "duplicate serial " << row.serial_hex;
    EXPECT_EQ(row.sha256_fingerprint.size(), 64u);
    EXPECT_FALSE(row.requester.empty());
    EXPECT_FALSE(row.host.empty());
  }
  // init: 3 CAs + 7 leaves + 5 kubeconfigs; renew all: 7 leaves + 4 kubeconfigs (kubelet.conf is
  // never renewed); sign-csr: 1; sign-dir: 7 leaves + 5 kubeconfigs.
  EXPECT_EQ(per_operation["init"], 15);
  EXPECT_EQ(per_operation["renew"], 11);
  EXPECT_EQ(per_operation["sign-csr"], 1);
  EXPECT_EQ(per_operation["sign-dir"], 12);
  EXPECT_EQ(rows->size(), 39u);
  // One audit record per certificate, and the chain verifies.
  const std::string audit = ReadTestFile(audit_path());
  size_t issue = 0;
  for (size_t p = 0; (p = audit.find("\"event\":\"cert-", p)) != std::string::npos; ++p) ++issue;
  EXPECT_EQ(issue, rows->size());
  auto key_events = std::count(audit.begin(), audit.end(), '\n');
  EXPECT_GE(key_events, 39 + 4) << "3 CA keys and the SA key were generated";
  EXPECT_NE(audit.find("\"event\":\"key-generate\",\"fields\":{\"label\":\"etcd-ca\""), std::string::npos);
  auto verify = Kubehsm({"audit", "verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.err;
  // The ledger's own view through the CLI: serials as openssl prints them.
  auto show = Kubehsm({"ledger", "show", SerialOf(ReadTestFile(dir() / "w1.crt")), "-o", "pem"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_EQ(show.out, ReadTestFile(dir() / "w1.crt"));
}

TEST_F(SignDirTest, SigkillMidSignDirLeavesLedgerWithEveryCertificateOnDisk) {
  // Kill sign-dir as soon as its first certificate reaches disk (polling every 100 µs), in several
  // rounds; each round's run has 12 certificates to sign, each a ledger commit, an audit append and
  // an atomic file write, all fsynced, so the kill lands mid-run.
  int killed_mid_run = 0;
  for (int round = 0; round < 4; ++round) {
    const fs::path node = Node("node" + std::to_string(round));
    GenerateCsrs(node);
    const std::vector<std::string> argv = KubehsmArgv(SignDirArgs(node));
    testing::SpawnArgs spawn(argv, env());
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    ASSERT_EQ(posix_spawn(&pid, spawn.argv()[0], &fa, nullptr, spawn.argv(), spawn.envp()), 0);
    posix_spawn_file_actions_destroy(&fa);
    const fs::path first = node / "pki/apiserver.crt";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    bool exited = false;
    while (!fs::exists(first) && std::chrono::steady_clock::now() < deadline) {
      if (::waitpid(pid, nullptr, WNOHANG) == pid) {
        exited = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    if (!exited) {
      ::kill(pid, SIGKILL);
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
    const auto on_disk = CertsOnDisk(node);
    if (!exited && on_disk.size() < 12) ++killed_mid_run;
    // The ledger opens cleanly and holds every certificate that reached disk, byte for byte.
    auto l = ledger::Ledger::Open(ledger_path());
    ASSERT_TRUE(l.ok()) << l.status().message();
    for (const auto& [name, pem] : on_disk) {
      auto row = (*l)->Get(SerialOf(pem));
      ASSERT_TRUE(row.ok()) << "round " << round << ": " << name << " on disk but not in the ledger";
      EXPECT_EQ(row->cert_pem, pem);
    }
    // A re-run completes the job and keeps what was already signed.
    auto rerun = SignDir(node);
    ASSERT_EQ(rerun.exit_code, 0) << rerun.out << rerun.err;
    const auto after = CertsOnDisk(node);
    EXPECT_EQ(after.size(), 12u);
    for (const auto& [name, pem] : on_disk) EXPECT_EQ(after.at(name), pem) << name << " was re-signed";
    auto verify = Kubehsm({"pki", "verify", "--cert-dir", (node / "pki").string(), "--kubeconfig-dir", node.string(),
                           "--config", Config().string()});
    EXPECT_EQ(verify.exit_code, 0) << verify.out;
  }
  EXPECT_GE(killed_mid_run, 1) << "no round was killed in the middle of its run";
  auto check = RunProcess({"sqlite3", ledger_path().string(), "PRAGMA integrity_check"});
  ASSERT_EQ(check.exit_code, 0) << check.err;
  EXPECT_EQ(check.out, "ok\n");
}

TEST_F(SignDirTest, TwoConcurrentProcessesNeverProduceDuplicateSerials) {
  // Two processes, each signing 12 certificates (sign-dir) and then 10 CSRs (sign-csr loop), at once
  // on one token and one ledger.
  for (const char* n : {"a", "b"}) GenerateCsrs(Node(n));
  for (int i = 0; i < 20; ++i) {
    testutil::CsrRequest r;
    r.cn = "system:node:w" + std::to_string(i);
    r.orgs = {"system:nodes"};
    WriteCsr("w" + std::to_string(i) + ".csr", testutil::MakeCsr(r));
  }
  // SoftHSM 2.6's file-backed token store sometimes fails to open the token while another process
  // is reading it (C_GetTokenInfo CKR_GENERAL_ERROR, or the token missing from the slot list). That
  // happens when the token is opened, before anything is signed, so such a run is retried. Every
  // other failure fails the test.
  auto worker = [&](const std::string& n, int first, ProcessResult* result) {
    std::string script =
        "set -e\n"
        "run() { local t out; for t in 1 2 3 4 5; do if out=$(\"$@\" 2>&1 >/dev/null); then return 0; fi;\n"
        "  [[ ($out == *'C_GetTokenInfo'* || $out == *'no token matches'*) && $t -lt 5 ]] || "
        "{ echo \"$out\" >&2; return 1; }; sleep 0.$RANDOM; done; }\n";
    auto quote = [](const std::vector<std::string>& argv) {
      std::string s;
      for (const auto& a : argv) s += "'" + a + "' ";
      return s;
    };
    script += "run " + quote(KubehsmArgv(SignDirArgs(Node(n)))) + "\n";
    for (int i = first; i < first + 10; ++i) {
      const std::string w = (dir() / ("w" + std::to_string(i))).string();
      script += "run " +
                quote(KubehsmArgv({"certs", "sign-csr", "--csr", w + ".csr", "--profile", "kubelet-client", "--out",
                                   w + ".crt", "--cert-dir", ca_dir().string()})) +
                "\n";
    }
    *result = RunProcess({"bash", "-c", script}, env());
  };
  ProcessResult ra, rb;
  std::thread ta(worker, "a", 0, &ra);
  std::thread tb(worker, "b", 10, &rb);
  ta.join();
  tb.join();
  ASSERT_EQ(ra.exit_code, 0) << ra.err;
  ASSERT_EQ(rb.exit_code, 0) << rb.err;
  auto rows = LedgerRows();
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->size(), 3u + 2 * 12 + 20);
  std::set<std::string> serials;
  for (const auto& row : *rows) EXPECT_TRUE(serials.insert(row.serial_hex).second) << row.serial_hex;
  // And on disk: every certificate's serial distinct and recorded.
  std::set<std::string> disk;
  for (const char* n : {"a", "b"}) {
    for (const auto& [name, pem] : CertsOnDisk(Node(n))) EXPECT_TRUE(disk.insert(SerialOf(pem)).second) << name;
  }
  for (int i = 0; i < 20; ++i)
    EXPECT_TRUE(disk.insert(SerialOf(ReadTestFile(dir() / ("w" + std::to_string(i) + ".crt")))).second);
  for (const auto& s : disk) EXPECT_TRUE(serials.contains(s)) << s;
  EXPECT_EQ(Kubehsm({"audit", "verify"}).exit_code, 0) << "concurrent appends keep the chain intact";
}

// ---- tar mode: archive names, the private working directory, kubeconfigs not signed ---------

class SignDirTarTest : public SignDirTest {
 protected:
  void SetUp() override {
    SignDirTest::SetUp();
    fs::create_directories(tmp());
    tar_env_ = env();
    tar_env_["TMPDIR"] = tmp().string();  // a run that used /tmp would leave its traces here
  }
  fs::path tmp() const { return dir() / "tmp"; }
  fs::path work_root() const { return token_.dir() / "work"; }  // <state-dir>/work
  fs::path Tar(const fs::path& node, const std::string& name = "csrs.tar") {
    const fs::path tar = dir() / name;
    EXPECT_EQ(RunProcess({"tar", "-C", node.string(), "-cf", tar.string(), "."}).exit_code, 0);
    return tar;
  }
  std::vector<std::string> TarArgs(const fs::path& in, const fs::path& out, std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"certs",     "sign-dir",  "--config",   Config().string(), "--in-tar",
                                  in.string(), "--out-tar", out.string(), "--ca-dir",        ca_dir().string()};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  ProcessResult SignTar(const fs::path& in, const fs::path& out, std::vector<std::string> extra = {}) {
    return RunProcess(KubehsmArgv(TarArgs(in, out, std::move(extra))), tar_env_);
  }
  // Starts a tar-mode sign-dir that unpacks the archive and then blocks reading its PIN from a pipe
  // (--pin-source fd:3); returns its pid and stores the pipe's write end in `pin_fd`.
  pid_t StartBlockedOnPin(const fs::path& in, const fs::path& out, int& pin_fd) {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    std::vector<std::string> args = TarArgs(in, out);
    args.insert(args.begin(), {"--pin-source", "fd:3"});
    testing::SpawnArgs spawn(KubehsmArgv(args), tar_env_);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 3);
    pid_t pid = -1;
    EXPECT_EQ(posix_spawn(&pid, spawn.argv()[0], &fa, nullptr, spawn.argv(), spawn.envp()), 0);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[0]);
    pin_fd = fds[1];
    return pid;
  }
  // Every regular file under the run's possible working places (TMPDIR and the state directory).
  std::vector<fs::path> FilesUnderWorkPlaces() const {
    std::vector<fs::path> files;
    for (const fs::path& root : {tmp(), token_.dir()}) {
      std::error_code ec;
      for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
           it.increment(ec)) {
        if (it->is_regular_file()) files.push_back(it->path());
      }
    }
    return files;
  }
  // Waits until a run has unpacked its archive (the last member it writes is super-admin.conf.csr).
  bool WaitForUnpacked(pid_t pid) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      for (const fs::path& f : FilesUnderWorkPlaces()) {
        if (f.filename() == "super-admin.conf.csr") return true;
      }
      if (::waitpid(pid, nullptr, WNOHANG) == pid) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }
  std::map<std::string, std::string> tar_env_;
};

TEST_F(SignDirTarTest, OutputRefusalsAndAuditNameArchiveMembersNeverTheWorkingDirectory) {
  GenerateCsrs(Node());
  testutil::CsrRequest other;
  other.cn = "cp2";
  other.sans = "DNS:cp2,DNS:localhost,IP:192.0.2.1";
  WriteTestFile(Node() / "pki/etcd/server.csr", testutil::MakeCsr(other));
  fs::remove(Node() / "pki/etcd/server.key");
  const fs::path in = Tar(Node());
  const fs::path out = dir() / "signed.tar";
  auto refused = SignTar(in, out);
  EXPECT_EQ(refused.exit_code, 2) << refused.out << refused.err;
  EXPECT_NE(refused.err.find(in.string() + ":pki/etcd/server.csr: disallowed CN 'cp2'"), std::string::npos)
      << refused.err;
  EXPECT_NE(refused.out.find("[sign-dir] REFUSED " + in.string() + ":pki/etcd/server.csr: "), std::string::npos)
      << refused.out;
  EXPECT_NE(refused.out.find("Checking the CSRs in \"" + in.string() + ":pki\" and \"" + in.string() + "\""),
            std::string::npos)
      << refused.out;
  EXPECT_FALSE(fs::exists(out));
  // The audit record names the member as the operator knows it.
  const std::string audit_refused = ReadTestFile(audit_path());
  EXPECT_NE(audit_refused.find("\"csr\":\"" + in.string() + ":pki/etcd/server.csr\""), std::string::npos)
      << audit_refused;

  // A good archive: each certificate is named as the member of the signed archive it goes into.
  fs::remove_all(Node());
  GenerateCsrs(Node());
  auto ok = SignTar(Tar(Node()), out);
  ASSERT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("[sign-dir] Signed \"etcd/server\" -> " + out.string() + ":pki/etcd/server.crt"),
            std::string::npos)
      << ok.out;
  EXPECT_NE(ok.out.find("[sign-dir] Signed \"super-admin.conf\" -> " + out.string() + ":super-admin.conf"),
            std::string::npos)
      << ok.out;
  // No temporary path anywhere the operator looks: output, errors, audit trail.
  const std::string audit = ReadTestFile(audit_path());
  for (const std::string& text : {refused.out, refused.err, ok.out, ok.err, audit}) {
    EXPECT_EQ(text.find("kubehsm-sign-dir-"), std::string::npos) << text;
    EXPECT_EQ(text.find(tmp().string()), std::string::npos) << text;
    EXPECT_EQ(text.find(work_root().string()), std::string::npos) << text;
  }
}

TEST_F(SignDirTarTest, SigkilledRunLeavesNoClientKeyAfterTheNextRun) {
  GenerateCsrs(Node());
  auto creds = ReadKubeconfig(ReadTestFile(Node() / "super-admin.conf"));
  ASSERT_TRUE(creds.ok()) << creds.status().message();
  // The start of super-admin.conf's client-key-data: any leftover copy of the kubeconfig holds it.
  const std::string conf_text = ReadTestFile(Node() / "super-admin.conf");
  const std::string marker = "client-key-data: ";
  const auto at = conf_text.find(marker);
  ASSERT_NE(at, std::string::npos);
  const std::string key_data = conf_text.substr(at + marker.size(), 64);
  const fs::path in = Tar(Node());

  // A run killed after it unpacked the archive (it waits for its PIN on fd 3) and before it could
  // remove its working directory.
  int pin_fd = -1;
  const pid_t pid = StartBlockedOnPin(in, dir() / "signed-killed.tar", pin_fd);
  ASSERT_TRUE(WaitForUnpacked(pid)) << "the run never unpacked its archive";
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  ::close(pin_fd);
  bool leftover = false;
  for (const fs::path& f : FilesUnderWorkPlaces()) leftover |= f.filename() == "super-admin.conf";
  ASSERT_TRUE(leftover) << "the kill did not land between unpacking and clean-up";

  // The next run (another archive, same box) cleans up what the killed one left.
  auto next = SignTar(in, dir() / "signed.tar");
  ASSERT_EQ(next.exit_code, 0) << next.out << next.err;
  EXPECT_NE(next.out.find("Removed 1 working directory left by an interrupted earlier run"), std::string::npos)
      << next.out;
  for (const fs::path& f : FilesUnderWorkPlaces()) {
    for (const char* conf : kConfs) EXPECT_NE(f.filename(), conf) << f << " left behind";
    EXPECT_NE(f.extension(), ".key") << f << " left behind";
    EXPECT_EQ(ReadTestFile(f).find(key_data), std::string::npos) << f << " holds super-admin.conf's client key";
  }
  EXPECT_TRUE(fs::is_empty(tmp())) << "nothing in TMPDIR";
  EXPECT_TRUE(fs::is_empty(work_root())) << "no working directory after the run";
}

TEST_F(SignDirTarTest, ConcurrentRunsWorkingDirectoryIsNeverRemoved) {
  GenerateCsrs(Node("a"));
  GenerateCsrs(Node("b"));
  const fs::path tar_a = Tar(Node("a"), "a.tar");
  const fs::path tar_b = Tar(Node("b"), "b.tar");
  int pin_fd = -1;
  const pid_t pid = StartBlockedOnPin(tar_a, dir() / "signed-a.tar", pin_fd);
  ASSERT_TRUE(WaitForUnpacked(pid)) << "run a never unpacked its archive";
  // Run b starts and finishes while run a waits: b must not take a's live directory for a stale one.
  auto b = SignTar(tar_b, dir() / "signed-b.tar");
  EXPECT_EQ(b.exit_code, 0) << b.out << b.err;
  EXPECT_EQ(b.out.find("Removed"), std::string::npos) << b.out;
  const std::string pin = token_.user_pin() + "\n";
  ASSERT_EQ(::write(pin_fd, pin.data(), pin.size()), static_cast<ssize_t>(pin.size()));
  ::close(pin_fd);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "run a lost its working directory";
  auto listing = RunProcess({"tar", "-tf", (dir() / "signed-a.tar").string()});
  EXPECT_NE(listing.out.find("pki/etcd/server.crt"), std::string::npos) << listing.out;
  EXPECT_NE(listing.out.find("super-admin.conf"), std::string::npos) << listing.out;
  EXPECT_TRUE(fs::is_empty(work_root()));
}

TEST_F(SignDirTarTest, KubeconfigOutsideTheNodeSetIsRefusedNotCarriedBackUnsigned) {
  // A joining control-plane node's archive that still holds super-admin.conf (its CSR removed).
  GenerateCsrs(Node());
  for (const char* f : {"super-admin.conf.csr", "kubelet.conf.csr", "kubelet.conf"}) fs::remove(Node() / f);
  const fs::path in = Tar(Node());
  const fs::path out = dir() / "signed.tar";
  auto r = SignTar(in, out, {"--node-set", "control-plane-join"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find(in.string() + ":super-admin.conf: not part of the control-plane-join set"), std::string::npos)
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(fs::exists(out)) << "nothing goes back";
  auto rows = LedgerRows();
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->size(), 3u) << "nothing signed";
  // Without it the same archive signs.
  fs::remove(Node() / "super-admin.conf");
  auto ok = SignTar(Tar(Node()), out, {"--node-set", "control-plane-join"});
  ASSERT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  auto listing = RunProcess({"tar", "-tf", out.string()});
  EXPECT_EQ(listing.out.find("super-admin.conf"), std::string::npos) << listing.out;
}

TEST_F(SignDirTarTest, RenewalKubeconfigWithoutItsCsrIsRefusedNotCarriedBackUnsigned) {
  GenerateCsrs(Node());
  fs::remove(Node() / "admin.conf.csr");  // admin.conf (client key, no certificate) stays in the archive
  const fs::path in = Tar(Node());
  const fs::path out = dir() / "signed.tar";
  auto r = SignTar(in, out, {"--renew"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find(in.string() + ":admin.conf: has no admin.conf.csr beside it, so it would go back unsigned"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(SignDirTest, ConfigWithoutNodeNameOrAddressIsRefusedNamingTheField) {
  GenerateCsrs(Node());
  const fs::path no_name = dir() / "no-name.yaml";
  WriteTestFile(no_name,
                "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: "
                "192.0.2.1\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
                "encryptionAlgorithm: ECDSA-P256\n");
  const fs::path no_address = dir() / "no-address.yaml";
  WriteTestFile(no_address,
                "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: cp1\n---\n"
                "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: ECDSA-P256\n");
  for (const auto& [config, field] : std::vector<std::pair<fs::path, std::string>>{
           {no_name,
            "sets no InitConfiguration.nodeRegistration.name, so the node name would be this signing box's "
            "hostname"},
           // (On a box without a usable address, loading --config already says to set the field.)
           {no_address, "InitConfiguration.localAPIEndpoint.advertiseAddress"}}) {
    auto r = Kubehsm({"certs", "sign-dir", "--config", config.string(), "--cert-dir", (Node() / "pki").string(),
                      "--kubeconfig-dir", Node().string(), "--ca-dir", ca_dir().string()});
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_NE(r.err.find(field), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("set "), std::string::npos) << "says what to set: " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(CertsOnDisk(Node()).empty()) << "nothing signed";
  }
}

// ---- audit verify on a real run's log ------------------------------------------------------

class AuditTamperTest : public SignDirTest {
 protected:
  void SetUp() override {
    SignDirTest::SetUp();
    GenerateCsrs(Node());
    ASSERT_EQ(SignDir(Node()).exit_code, 0);
    std::istringstream in(ReadTestFile(audit_path()));
    for (std::string line; std::getline(in, line);) lines_.push_back(line);
    ASSERT_GT(lines_.size(), 10u);
  }
  // Writes `lines` (and the real head file) as a copy and runs `kubehsm audit verify` on it.
  ProcessResult VerifyCopy(const std::vector<std::string>& lines, const std::string& tail = "") {
    std::string text;
    for (const auto& l : lines) text += l + "\n";
    text += tail;
    const fs::path copy = dir() / "audit-copy.log";
    WriteTestFile(copy, text);
    WriteTestFile(copy.string() + ".head", ReadTestFile(audit_path().string() + ".head"));
    return Kubehsm({"audit", "verify", "--log", copy.string()});
  }
  std::vector<std::string> lines_;
};

TEST_F(AuditTamperTest, UntouchedCopyVerifies) {
  auto r = VerifyCopy(lines_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(std::to_string(lines_.size()) + " record(s), chain intact"), std::string::npos) << r.out;
}

TEST_F(AuditTamperTest, EditedRecordFailsNamingIt) {
  for (size_t index : {size_t{0}, size_t{5}, lines_.size() - 1}) {
    auto lines = lines_;
    const auto pos = lines[index].find("\"time\":\"");
    ASSERT_NE(pos, std::string::npos);
    lines[index][pos + 8] = lines[index][pos + 8] == '1' ? '2' : '1';  // one digit of the timestamp
    auto r = VerifyCopy(lines);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(
        r.err.find("record " + std::to_string(index + 1) + " (line " + std::to_string(index + 1) + "): hash mismatch"),
        std::string::npos)
        << r.err;
  }
}

TEST_F(AuditTamperTest, DeletedRecordFailsNamingIt) {
  for (size_t index : {size_t{0}, size_t{4}}) {
    auto lines = lines_;
    lines.erase(lines.begin() + static_cast<std::ptrdiff_t>(index));
    auto r = VerifyCopy(lines);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("record " + std::to_string(index + 1) + " missing or out of order"), std::string::npos)
        << r.err;
  }
}

TEST_F(AuditTamperTest, TruncatedLogFailsNamingTheFirstMissingRecord) {
  auto lines = lines_;
  lines.resize(lines.size() - 2);
  auto r = VerifyCopy(lines);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("truncated after record " + std::to_string(lines.size()) + "; record " +
                       std::to_string(lines.size() + 1)),
            std::string::npos)
      << r.err;
  // A cut in the middle of the last line.
  lines = lines_;
  const std::string partial = lines.back().substr(0, lines.back().size() / 2);
  lines.pop_back();
  r = VerifyCopy(lines, partial);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("record " + std::to_string(lines_.size()) + " is truncated"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kubehsm::signer::pki
