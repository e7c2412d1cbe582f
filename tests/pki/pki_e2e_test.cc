// End-to-end tests: the real `kubehsm` binary on a fresh SoftHSM token, and real consumers of its
// output: a 3-member etcd cluster with etcdctl, an openssl mutual-TLS server/client pair, kubectl.
// Every server listens on 127.0.0.1 on ports chosen free at runtime, waits are bounded, and every
// process is killed when the test ends.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/file_util.h"
#include "signer/pki/kubeconfig.h"
#include "signer/pki/profiles.h"
#include "tests/support/test_env.h"

extern char** environ;

namespace kubehsm::signer::pki {
namespace {

namespace fs = std::filesystem;
using kubehsm::testing::KubehsmBinary;
using kubehsm::testing::ProcessResult;
using kubehsm::testing::RunProcess;
using kubehsm::testing::SoftHsmToken;
using kubehsm::testing::TempDir;

// A free TCP port on 127.0.0.1 (bound to port 0, then released).
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "cannot find a free port";
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool PortOpen(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

// A background process whose output goes to `log`; killed (SIGTERM, then SIGKILL) on destruction.
class BackgroundProcess final {
 public:
  BackgroundProcess(const std::vector<std::string>& argv, const fs::path& log,
                    const std::map<std::string, std::string>& env = {}) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
    for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp;
    std::vector<char*> args;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_copy = argv;
    for (auto& s : argv_copy) args.push_back(s.data());
    args.push_back(nullptr);
    if (posix_spawnp(&pid_, args[0], &fa, nullptr, args.data(), envp.data()) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
    EXPECT_GT(pid_, 0) << "cannot start " << argv[0];
  }
  BackgroundProcess(const BackgroundProcess&) = delete;  // owns the child
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;
  ~BackgroundProcess() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 50; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  bool Running() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  pid_t pid_ = -1;
};

// Polls `ready` every 200 ms for at most `timeout`.
template <typename F>
bool WaitFor(F ready, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

std::string Read(const fs::path& p) { return ReadFileBounded(p, 1 << 20).value(); }

class PkiE2eTest : public ::testing::Test {
 protected:
  PkiE2eTest() {
    token_.WriteKubehsmConfig();
    env_ = token_.ChildEnv();
  }

  ProcessResult Kubehsm(std::vector<std::string> args) {
    args.insert(args.begin(), KubehsmBinary().string());
    return RunProcess(args, env_);
  }

  // `kubehsm init` for node `node` into <dir>/<node>/{pki,...} with ECDSA P-256 keys (fast).
  ProcessResult Init(const std::string& node, const std::string& address = "127.0.0.1") {
    return Kubehsm({"init", "--cert-dir", CertDir(node).string(), "--kubeconfig-dir", KubeDir(node).string(),
                    "--node-name", node, "--advertise-address", address, "--encryption-algorithm", "ECDSA-P256"});
  }

  fs::path KubeDir(const std::string& node) const { return dir_.path() / node; }
  fs::path CertDir(const std::string& node) const { return dir_.path() / node / "pki"; }

  std::map<std::string, std::string> Snapshot(const fs::path& root) const {
    std::map<std::string, std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      if (e.is_regular_file()) files[fs::relative(e.path(), root).string()] = Read(e.path());
    }
    return files;
  }

  SoftHsmToken token_;
  std::map<std::string, std::string> env_;
  TempDir dir_;
};

TEST_F(PkiE2eTest, InitWritesEverythingAndRerunChangesNothing) {
  ProcessResult first = Init("cp1");
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_NE(first.out.find("[certs] Generating \"apiserver\" certificate and key"), std::string::npos);
  EXPECT_NE(first.out.find("[kubeconfig] Writing \"admin.conf\" kubeconfig file"), std::string::npos);
  for (const char* never : {"ca.key", "etcd/ca.key", "front-proxy-ca.key", "sa.key"}) {
    EXPECT_FALSE(fs::exists(CertDir("cp1") / never)) << never;
  }
  auto keys = Kubehsm({"keys", "list"});
  ASSERT_EQ(keys.exit_code, 0) << keys.err;
  for (const char* label : {"ca", "etcd-ca", "front-proxy-ca", "kubehsm-sa:active:"}) {
    EXPECT_NE(keys.out.find(label), std::string::npos) << label << "\n" << keys.out;
  }
  const auto before = Snapshot(KubeDir("cp1"));
  ProcessResult again = Init("cp1");
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_EQ(Snapshot(KubeDir("cp1")), before);
  EXPECT_NE(again.out.find("[certs] Using existing ca certificate authority"), std::string::npos);
  EXPECT_NE(again.out.find("[init] Nothing changed"), std::string::npos) << again.out;
  EXPECT_EQ(again.out.find("Generating"), std::string::npos) << again.out;

  auto verify = Kubehsm({"pki", "verify", "--cert-dir", CertDir("cp1").string(), "--kubeconfig-dir",
                         KubeDir("cp1").string(), "--check-token"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  fs::permissions(CertDir("cp1") / "apiserver.key", fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                                         fs::perms::others_read);
  verify = Kubehsm({"pki", "verify", "--cert-dir", CertDir("cp1").string(), "--kubeconfig-dir", KubeDir("cp1").string()});
  EXPECT_EQ(verify.exit_code, 2);
  EXPECT_NE(verify.out.find("FAIL    apiserver "), std::string::npos) << verify.out;
  EXPECT_NE(verify.out.find("apiserver.key has mode 0644"), std::string::npos) << verify.out;
}

// sa.pub must belong to a service-account key the token still holds: after the key behind it is
// rotated out and removed, --check-token fails the sa item with the reason.
TEST_F(PkiE2eTest, CheckTokenFailsForSaPubWhoseKeyWasRemoved) {
  ASSERT_EQ(Init("cp1").exit_code, 0);
  const auto verify = [&] {
    return Kubehsm({"pki", "verify", "--cert-dir", CertDir("cp1").string(), "--kubeconfig-dir", KubeDir("cp1").string(),
                    "--check-token"});
  };
  ProcessResult ok = verify();
  ASSERT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("OK      sa "), std::string::npos) << ok.out;
  // The kid behind sa.pub: the active key.
  ProcessResult keys = Kubehsm({"keys", "list", "-o", "json"});
  ASSERT_EQ(keys.exit_code, 0) << keys.err;
  const std::string marker = "\"label\": \"kubehsm-sa:active:";
  const auto at = keys.out.find(marker);
  ASSERT_NE(at, std::string::npos) << keys.out;
  const std::string label = keys.out.substr(at + 10, keys.out.find('"', at + 10) - (at + 10));
  ASSERT_EQ(Kubehsm({"sa", "rotate"}).exit_code, 0);
  ProcessResult activate = Kubehsm({"sa", "activate", "--force"});
  ASSERT_EQ(activate.exit_code, 0) << activate.err;
  ProcessResult removed = Kubehsm({"sa", "remove", "--force", "--key=" + label.substr(label.rfind(':') + 1)});
  ASSERT_EQ(removed.exit_code, 0) << removed.out << removed.err;
  ProcessResult failed = verify();
  EXPECT_EQ(failed.exit_code, 2) << failed.out;
  EXPECT_NE(failed.out.find("FAIL    sa "), std::string::npos) << failed.out;
  EXPECT_NE(failed.out.find("the token holds no service-account key for sa.pub"), std::string::npos) << failed.out;
}

// pki tree draws what is there, and refuses a directory that is not.
TEST_F(PkiE2eTest, TreeRefusesAMissingDirectoryAndDrawsFileKeys) {
  ProcessResult missing = Kubehsm({"pki", "tree", "--cert-dir", (dir_.path() / "nope").string()});
  EXPECT_EQ(missing.exit_code, 2) << missing.out;
  EXPECT_TRUE(missing.out.empty()) << missing.out;
  EXPECT_NE(missing.err.find("nope is not a directory"), std::string::npos) << missing.err;
  ASSERT_EQ(Init("cp1").exit_code, 0);
  ProcessResult tree =
      Kubehsm({"pki", "tree", "--cert-dir", CertDir("cp1").string(), "--kubeconfig-dir", KubeDir("cp1").string()});
  ASSERT_EQ(tree.exit_code, 0) << tree.err;
  EXPECT_TRUE(tree.out.starts_with("PKCS#11 token (private keys never leave it)\n")) << tree.out;
  kubehsm::testing::WriteTestFile(CertDir("cp1") / "ca.key", "a key on disk", 0600);
  tree = Kubehsm({"pki", "tree", "--cert-dir", CertDir("cp1").string(), "--kubeconfig-dir", KubeDir("cp1").string()});
  ASSERT_EQ(tree.exit_code, 0) << tree.err;
  EXPECT_EQ(tree.out.find("PKCS#11 token (private keys never leave it)"), std::string::npos) << tree.out;
  EXPECT_NE(tree.out.find("├── ca  [file key " + (CertDir("cp1") / "ca.key").string()), std::string::npos) << tree.out;
}

TEST_F(PkiE2eTest, KubectlParsesEveryKubeconfig) {
  ASSERT_EQ(Init("cp1").exit_code, 0);
  for (const KubeconfigProfile& kc : KubeconfigProfiles()) {
    const fs::path path = KubeDir("cp1") / kc.file_name;
    ProcessResult view = RunProcess({"kubectl", "config", "view", "--kubeconfig", path.string(), "-o",
                                     "jsonpath={.current-context} {.clusters[0].cluster.server} {.users[0].name}"});
    ASSERT_EQ(view.exit_code, 0) << kc.file_name << ": " << view.err;
    std::string user(kc.common_name);
    if (user == "system:node:") user += "cp1";
    EXPECT_EQ(view.out, user + "@kubernetes https://127.0.0.1:6443 " + user) << kc.file_name;
  }
}

// apiserver.crt/key serving TLS, client certificates required from ca.crt: admin.conf's embedded
// credentials are accepted, a front-proxy-ca client certificate is refused.
TEST_F(PkiE2eTest, MutualTlsAcceptsAdminConfAndRefusesFrontProxyClient) {
  ASSERT_EQ(Init("cp1").exit_code, 0);
  const fs::path pki = CertDir("cp1");
  auto creds = ReadKubeconfig(Read(KubeDir("cp1") / "admin.conf"));
  ASSERT_TRUE(creds.ok()) << creds.status().message();
  const fs::path admin_crt = dir_.path() / "admin-from-kubeconfig.crt";
  const fs::path admin_key = dir_.path() / "admin-from-kubeconfig.key";
  const fs::path admin_ca = dir_.path() / "ca-from-kubeconfig.crt";
  ASSERT_TRUE(WriteFileAtomic(admin_crt, creds->client_cert_pem, 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(admin_key, creds->client_key_pem, 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(admin_ca, creds->ca_pem, 0600).ok());

  const int port = FreePort();
  BackgroundProcess server({"openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port), "-cert",
                            (pki / "apiserver.crt").string(), "-key", (pki / "apiserver.key").string(), "-CAfile",
                            (pki / "ca.crt").string(), "-Verify", "1", "-verify_return_error", "-www"},
                           dir_.path() / "s_server.log");
  ASSERT_TRUE(WaitFor([&] { return PortOpen(port); }, std::chrono::seconds(20))) << Read(dir_.path() / "s_server.log");

  auto client = [&](const fs::path& crt, const fs::path& key) {
    return RunProcess({"timeout", "20", "openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port),
                       "-servername", "kubernetes", "-verify_hostname", "kubernetes", "-CAfile", admin_ca.string(),
                       "-verify_return_error", "-cert", crt.string(), "-key", key.string(), "-ign_eof"},
                      {}, "GET / HTTP/1.0\r\n\r\n");
  };
  ProcessResult good = client(admin_crt, admin_key);
  EXPECT_EQ(good.exit_code, 0) << good.out << good.err;
  EXPECT_NE(good.out.find("HTTP/1.0 200 ok"), std::string::npos) << good.out << good.err;
  EXPECT_NE(good.out.find("Verify return code: 0 (ok)"), std::string::npos);

  ProcessResult bad = client(pki / "front-proxy-client.crt", pki / "front-proxy-client.key");
  EXPECT_EQ(bad.out.find("HTTP/1.0 200 ok"), std::string::npos) << bad.out;
  EXPECT_TRUE(server.Running());
  EXPECT_NE(Read(dir_.path() / "s_server.log").find("verify error"), std::string::npos)
      << Read(dir_.path() / "s_server.log");
}

// Three etcd members on loopback, each with its own server/peer certificates (init for etcd1,
// `certs issue` for etcd2 and etcd3), then etcdctl with healthcheck-client and apiserver-etcd-client.
TEST_F(PkiE2eTest, ThreeMemberEtcdClusterRunsOnTheIssuedCertificates) {
  ASSERT_EQ(Init("etcd1").exit_code, 0);
  for (const char* node : {"etcd2", "etcd3"}) {
    ProcessResult issued =
        Kubehsm({"certs", "issue", "--ca-dir", CertDir("etcd1").string(), "--cert-dir", CertDir(node).string(),
                 "--kubeconfig-dir", KubeDir(node).string(), "--node-name", node, "--advertise-address", "127.0.0.1",
                 "--encryption-algorithm", "ECDSA-P256"});
    ASSERT_EQ(issued.exit_code, 0) << issued.out << issued.err;
    EXPECT_EQ(Read(CertDir(node) / "etcd/ca.crt"), Read(CertDir("etcd1") / "etcd/ca.crt"));
    EXPECT_NE(Read(CertDir(node) / "etcd/peer.key"), Read(CertDir("etcd1") / "etcd/peer.key"));
  }
  const std::vector<std::string> names = {"etcd1", "etcd2", "etcd3"};
  std::map<std::string, int> client_port, peer_port;
  std::string initial_cluster, endpoints;
  for (const auto& n : names) {
    client_port[n] = FreePort();
    peer_port[n] = FreePort();
    initial_cluster += (initial_cluster.empty() ? "" : ",") + n + "=https://127.0.0.1:" + std::to_string(peer_port[n]);
    endpoints += (endpoints.empty() ? "" : ",") + std::string("https://127.0.0.1:") + std::to_string(client_port[n]);
  }
  std::vector<std::unique_ptr<BackgroundProcess>> members;
  for (const auto& n : names) {
    const fs::path etcd = CertDir(n) / "etcd";
    const std::string client_url = "https://127.0.0.1:" + std::to_string(client_port[n]);
    const std::string peer_url = "https://127.0.0.1:" + std::to_string(peer_port[n]);
    members.push_back(std::make_unique<BackgroundProcess>(
        std::vector<std::string>{"etcd", "--name", n, "--data-dir", (dir_.path() / (n + ".data")).string(),
                                 "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
                                 "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                                 "--initial-cluster", initial_cluster, "--initial-cluster-state", "new",
                                 "--initial-cluster-token", "kubehsm-e2e", "--client-cert-auth",
                                 "--trusted-ca-file", (etcd / "ca.crt").string(), "--cert-file",
                                 (etcd / "server.crt").string(), "--key-file", (etcd / "server.key").string(),
                                 "--peer-client-cert-auth", "--peer-trusted-ca-file", (etcd / "ca.crt").string(),
                                 "--peer-cert-file", (etcd / "peer.crt").string(), "--peer-key-file",
                                 (etcd / "peer.key").string()},
        dir_.path() / (n + ".log"), std::map<std::string, std::string>{{"ETCD_UNSUPPORTED_ARCH", "arm64"}}));
  }
  const fs::path pki = CertDir("etcd1");
  auto etcdctl = [&](const std::string& cert, const std::string& key, std::vector<std::string> args) {
    std::vector<std::string> argv = {"timeout", "20", "etcdctl", "--endpoints", endpoints, "--cacert",
                                     (pki / "etcd/ca.crt").string(), "--cert", cert, "--key", key,
                                     "--dial-timeout", "3s", "--command-timeout", "5s"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, {{"ETCDCTL_API", "3"}});
  };
  const std::string hc_crt = (pki / "etcd/healthcheck-client.crt").string();
  const std::string hc_key = (pki / "etcd/healthcheck-client.key").string();
  ProcessResult health;
  const bool healthy = WaitFor(
      [&] {
        health = etcdctl(hc_crt, hc_key, {"endpoint", "health"});
        return health.exit_code == 0;
      },
      std::chrono::seconds(60));
  ASSERT_TRUE(healthy) << health.out << health.err << "\n--- etcd1 log:\n" << Read(dir_.path() / "etcd1.log");
  size_t healthy_count = 0;
  for (size_t p = 0; (p = (health.out + health.err).find("is healthy", p)) != std::string::npos; ++p) ++healthy_count;
  EXPECT_EQ(healthy_count, 3u) << health.out << health.err;

  const std::string api_crt = (pki / "apiserver-etcd-client.crt").string();
  const std::string api_key = (pki / "apiserver-etcd-client.key").string();
  ProcessResult put = etcdctl(api_crt, api_key, {"put", "/kubehsm/e2e", "hello-from-the-token"});
  ASSERT_EQ(put.exit_code, 0) << put.out << put.err;
  ProcessResult get = etcdctl(hc_crt, hc_key, {"get", "/kubehsm/e2e", "--print-value-only"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(get.out, "hello-from-the-token\n");
  ProcessResult list = etcdctl(api_crt, api_key, {"member", "list"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  for (const auto& n : names) EXPECT_NE(list.out.find(n), std::string::npos) << list.out;

  // A client certificate from the wrong CA (front-proxy-ca) is refused.
  ProcessResult wrong = etcdctl((pki / "front-proxy-client.crt").string(), (pki / "front-proxy-client.key").string(),
                                {"get", "/kubehsm/e2e", "--print-value-only"});
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_EQ(wrong.out.find("hello-from-the-token"), std::string::npos);
  for (const auto& m : members) EXPECT_TRUE(m->Running());
}

// A failure in the middle of init (the etcd directory cannot be created) ends with one clear line
// on stderr, a failure exit code, and no partial or temporary file.
TEST_F(PkiE2eTest, FailureInTheMiddleLeavesNoPartialFile) {
  ASSERT_TRUE(EnsureDirectory(CertDir("cp1"), 0755).ok());
  ASSERT_TRUE(WriteFileAtomic(CertDir("cp1") / "etcd", "not a directory", 0644).ok());
  ProcessResult r = Init("cp1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(r.err.starts_with("kubehsm: error: ")) << r.err;
  EXPECT_NE(r.err.find((CertDir("cp1") / "etcd").string()), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  for (const auto& [name, bytes] : Snapshot(KubeDir("cp1"))) {
    EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
    EXPECT_FALSE(bytes.empty()) << name;
  }
  // The run can be completed once the obstacle is gone.
  fs::remove(CertDir("cp1") / "etcd");
  ProcessResult again = Init("cp1");
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
}

TEST_F(PkiE2eTest, HelpAndUsageErrors) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"init", "--help"}, {"init", "phase", "--help"}, {"certs", "--help"},
        {"certs", "issue", "--help"}, {"certs", "renew", "--help"}, {"certs", "check-expiration", "--help"},
        {"pki", "--help"}, {"pki", "verify", "--help"}, {"pki", "tree", "--help"}}) {
    ProcessResult r = Kubehsm(args);
    EXPECT_EQ(r.exit_code, 0) << args[0] << " " << args[1] << ": " << r.err;
    EXPECT_NE(r.out.find("Usage: kubehsm"), std::string::npos) << r.out;
  }
  EXPECT_EQ(Kubehsm({"init", "phase", "bogus"}).exit_code, 1);
  EXPECT_EQ(Kubehsm({"certs", "renew", "bogus"}).exit_code, 1);
  EXPECT_EQ(Kubehsm({"init", "--encryption-algorithm", "DSA"}).exit_code, 2);
}

// kubeadm-versions.md, per supported minor, through the real binary: the subject of
// apiserver-kubelet-client (O=kubeadm:cluster-admins up to 1.35, CN only in 1.36) and the server
// of kubelet.conf (controlPlaneEndpoint in 1.32, the local endpoint from 1.33); everything else
// is the same. `pki verify --config` accepts each version's output under its own config.
TEST_F(PkiE2eTest, InitFollowsTheKubernetesVersionPerMinor) {
  struct Case {
    std::string option;  // --kubernetes-version, or "" for the default
    std::string subject;
    std::string kubelet_server;
  };
  const std::string with_o = "subject=O = kubeadm:cluster-admins, CN = kube-apiserver-kubelet-client\n";
  const std::string cn_only = "subject=CN = kube-apiserver-kubelet-client\n";
  const std::string lb = "https://lb.example.com:6443";
  const std::string local = "https://127.0.0.1:6443";
  for (const Case& c : {Case{"v1.32.6", with_o, lb}, Case{"1.33.0", with_o, local}, Case{"v1.34.1", with_o, local},
                        Case{"v1.35", with_o, local}, Case{"v1.36.2", cn_only, local}, Case{"", cn_only, local}}) {
    SCOPED_TRACE(c.option.empty() ? "default" : c.option);
    const std::string node = "cp" + (c.option.empty() ? std::string("default") : c.option);
    std::vector<std::string> args = {"init",
                                     "--cert-dir",
                                     CertDir(node).string(),
                                     "--kubeconfig-dir",
                                     KubeDir(node).string(),
                                     "--node-name",
                                     "cp1",
                                     "--advertise-address",
                                     "127.0.0.1",
                                     "--control-plane-endpoint",
                                     "lb.example.com",
                                     "--encryption-algorithm",
                                     "ECDSA-P256",
                                     "--overwrite"};
    if (!c.option.empty()) {
      args.push_back("--kubernetes-version");
      args.push_back(c.option);
    }
    ProcessResult r = Kubehsm(args);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    ProcessResult subject = RunProcess({"openssl", "x509", "-noout", "-subject", "-nameopt", "oneline", "-in",
                                        (CertDir(node) / "apiserver-kubelet-client.crt").string()});
    ASSERT_EQ(subject.exit_code, 0) << subject.err;
    EXPECT_EQ(subject.out, c.subject);
    for (const KubeconfigProfile& kc : KubeconfigProfiles()) {
      ProcessResult view =
          RunProcess({"kubectl", "config", "view", "--kubeconfig", (KubeDir(node) / kc.file_name).string(), "-o",
                      "jsonpath={.clusters[0].cluster.server}"});
      ASSERT_EQ(view.exit_code, 0) << kc.file_name << ": " << view.err;
      std::string want = kc.local_endpoint ? local : lb;
      if (kc.file_name == "kubelet.conf") want = c.kubelet_server;
      EXPECT_EQ(view.out, want) << kc.file_name;
    }
    // The admin kubeconfig keeps O=kubeadm:cluster-admins at every version.
    auto admin = ReadKubeconfig(Read(KubeDir(node) / "admin.conf"));
    ASSERT_TRUE(admin.ok());
    ASSERT_TRUE(WriteFileAtomic(dir_.path() / "admin.crt", admin->client_cert_pem, 0600).ok());
    ProcessResult admin_subject = RunProcess(
        {"openssl", "x509", "-noout", "-subject", "-nameopt", "oneline", "-in", (dir_.path() / "admin.crt").string()});
    EXPECT_EQ(admin_subject.out, "subject=O = kubeadm:cluster-admins, CN = kubernetes-admin\n");
    // Without a config `pki verify` accepts every supported version's subject.
    ProcessResult verify =
        Kubehsm({"pki", "verify", "--cert-dir", CertDir(node).string(), "--kubeconfig-dir", KubeDir(node).string()});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  }
}

// Upgrade 1.35 -> 1.36: `certs renew` with the 1.36 config re-issues apiserver-kubelet-client
// without O; with the 1.35 config it keeps O. `pki verify --config` follows the config's version.
TEST_F(PkiE2eTest, RenewWithA136ConfigDropsTheOrganizationOfApiserverKubeletClient) {
  auto config = [&](const std::string& version) {
    const fs::path p = dir_.path() / ("kubeadm-" + version + ".yaml");
    EXPECT_TRUE(WriteFileAtomic(p,
                                "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n"
                                "  name: cp1\nlocalAPIEndpoint:\n  advertiseAddress: 127.0.0.1\n---\n"
                                "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
                                "encryptionAlgorithm: ECDSA-P256\ncertificatesDir: " +
                                    CertDir("cp1").string() + "\nkubernetesVersion: " + version + "\n",
                                0600)
                    .ok());
    return p.string();
  };
  const std::string v135 = config("v1.35.0");
  const std::string v136 = config("v1.36.0");
  ProcessResult init = Kubehsm({"init", "--config", v135, "--kubeconfig-dir", KubeDir("cp1").string()});
  ASSERT_EQ(init.exit_code, 0) << init.out << init.err;
  auto subject = [&] {
    return RunProcess({"openssl", "x509", "-noout", "-subject", "-nameopt", "oneline", "-in",
                       (CertDir("cp1") / "apiserver-kubelet-client.crt").string()})
        .out;
  };
  EXPECT_EQ(subject(), "subject=O = kubeadm:cluster-admins, CN = kube-apiserver-kubelet-client\n");
  auto verify = [&](const std::string& cfg) {
    return Kubehsm({"pki", "verify", "--cert-dir", CertDir("cp1").string(), "--kubeconfig-dir", KubeDir("cp1").string(),
                    "--config", cfg});
  };
  EXPECT_EQ(verify(v135).exit_code, 0) << verify(v135).out;
  ProcessResult mismatch = verify(v136);
  EXPECT_EQ(mismatch.exit_code, 2);
  EXPECT_NE(mismatch.out.find("FAIL    apiserver-kubelet-client "), std::string::npos) << mismatch.out;

  ProcessResult same = Kubehsm({"certs", "renew", "apiserver-kubelet-client", "--cert-dir", CertDir("cp1").string(),
                                "--kubeconfig-dir", KubeDir("cp1").string(), "--config", v135});
  ASSERT_EQ(same.exit_code, 0) << same.out << same.err;
  EXPECT_EQ(subject(), "subject=O = kubeadm:cluster-admins, CN = kube-apiserver-kubelet-client\n");

  ProcessResult upgraded = Kubehsm({"certs", "renew", "apiserver-kubelet-client", "--cert-dir", CertDir("cp1").string(),
                                    "--kubeconfig-dir", KubeDir("cp1").string(), "--config", v136});
  ASSERT_EQ(upgraded.exit_code, 0) << upgraded.out << upgraded.err;
  EXPECT_EQ(subject(), "subject=CN = kube-apiserver-kubelet-client\n");
  EXPECT_EQ(verify(v136).exit_code, 0) << verify(v136).out;
  // Without --config renew keeps the subject it finds (any supported version's profile).
  ProcessResult keep = Kubehsm({"certs", "renew", "apiserver-kubelet-client", "--cert-dir", CertDir("cp1").string(),
                                "--kubeconfig-dir", KubeDir("cp1").string()});
  ASSERT_EQ(keep.exit_code, 0) << keep.out << keep.err;
  EXPECT_EQ(subject(), "subject=CN = kube-apiserver-kubelet-client\n");
  // An O of no version's profile is refused without a config, naming what each version wants.
  const fs::path crt = CertDir("cp1") / "apiserver-kubelet-client.crt";
  ProcessResult plant = RunProcess({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                                    "-nodes", "-days", "30", "-keyout", (dir_.path() / "p.key").string(), "-out",
                                    crt.string(), "-subj", "/O=system:masters/CN=kube-apiserver-kubelet-client"});
  ASSERT_EQ(plant.exit_code, 0) << plant.err;
  const std::string planted = Read(crt);
  ProcessResult refused = Kubehsm({"certs", "renew", "apiserver-kubelet-client", "--cert-dir", CertDir("cp1").string(),
                                   "--kubeconfig-dir", KubeDir("cp1").string()});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("O [system:masters], profile wants [kubeadm:cluster-admins] (1.32..1.35) or [] (1.36)"),
            std::string::npos)
      << refused.err;
  EXPECT_EQ(Read(crt), planted);  // nothing renewed
}

// ECDSA-P384 is refused below 1.34 (nothing written) and accepted from 1.34; a version outside
// 1.32..1.36 or a label is refused naming the range; --help states the default, 1.36.
TEST_F(PkiE2eTest, KubernetesVersionRefusalsAndDefault) {
  for (const std::string minor : {"32", "33"}) {
    const std::string node = "p384-" + minor;
    ProcessResult r = Kubehsm({"init", "--cert-dir", CertDir(node).string(), "--kubeconfig-dir", KubeDir(node).string(),
                               "--node-name", "cp1", "--advertise-address", "127.0.0.1", "--encryption-algorithm",
                               "ECDSA-P384", "--kubernetes-version", "v1." + minor + ".0"});
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_EQ(r.err,
              "kubehsm: error: field \"ClusterConfiguration.encryptionAlgorithm\": ECDSA-P384 needs Kubernetes "
              "1.34 or newer (the cluster is 1." +
                  minor + ")\n");
    EXPECT_FALSE(fs::exists(KubeDir(node))) << "nothing is written";
  }
  for (const std::string minor : {"34", "36"}) {
    // --overwrite: the second run reuses the token's (P-384) CA keys for a new directory.
    const std::string node = "p384-" + minor;
    ProcessResult r = Kubehsm({"init", "--cert-dir", CertDir(node).string(), "--kubeconfig-dir", KubeDir(node).string(),
                               "--node-name", "cp1", "--advertise-address", "127.0.0.1", "--encryption-algorithm",
                               "ECDSA-P384", "--kubernetes-version", "v1." + minor + ".0", "--overwrite"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    ProcessResult text = RunProcess({"openssl", "x509", "-noout", "-text", "-in", (CertDir(node) / "ca.crt").string()});
    EXPECT_NE(text.out.find("NIST CURVE: P-384"), std::string::npos) << text.out;
  }
  for (const std::string bad : {"v1.31.0", "1.37", "stable-1.34"}) {
    ProcessResult r =
        Kubehsm({"init", "--cert-dir", CertDir("bad").string(), "--kubeconfig-dir", KubeDir("bad").string(),
                 "--node-name", "cp1", "--advertise-address", "127.0.0.1", "--kubernetes-version", bad});
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.err;
    EXPECT_TRUE(r.err.starts_with("kubehsm: error: --kubernetes-version: ")) << r.err;
    EXPECT_NE(r.err.find("1.32..1.36"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(KubeDir("bad")));
  }
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"init", "--help"}, {"certs", "issue", "--help"}}) {
    ProcessResult help = Kubehsm(args);
    ASSERT_EQ(help.exit_code, 0);
    EXPECT_NE(help.out.find("--kubernetes-version"), std::string::npos) << help.out;
    // boost wraps the description: compare with runs of blanks collapsed.
    std::string flat;
    for (char ch : help.out) {
      const bool blank = ch == ' ' || ch == '\n';
      if (!blank || flat.empty() || flat.back() != ' ') flat += blank ? ' ' : ch;
    }
    EXPECT_NE(flat.find("supported 1.32..1.36; default: the config's kubernetesVersion, else 1.36)"), std::string::npos)
        << help.out;
  }
}

}  // namespace
}  // namespace kubehsm::signer::pki
