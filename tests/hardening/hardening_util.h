// Helpers for the hardening suite (issue 8): the real kubehsm binary run with a deadline, its peak
// memory (wait4's rusage) and an optional SIGKILL after N lines of progress; the fault-injecting
// PKCS#11 shim in front of SoftHSM; and the checks every fault test ends with: every file under an
// output directory is complete and parses, no temporary file is left, every certificate on disk is
// in the issuance ledger (`kubehsm ledger list -o json`) and the audit trail verifies.
#pragma once

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/ssl_ptr.h"
#include "signer/pki/kubeconfig.h"
#include "tests/support/test_env.h"

extern char** environ;

namespace kubehsm::hardening {

namespace fs = std::filesystem;

struct ChildRun {
  int exit_code = -1;  // 128+signal when killed by a signal
  std::string out;
  std::string err;
  long max_rss_kib = 0;   // peak resident set of the child (ru_maxrss)
  double seconds = 0;     // wall time
  bool timed_out = false;  // killed at the deadline
  bool killed = false;     // killed by us after `kill_after_lines` lines
};

struct RunOptions {
  std::map<std::string, std::string> env;  // added to this process's environment
  std::chrono::seconds timeout{60};
  int kill_after_lines = -1;  // SIGKILL the child once its stdout has this many lines
};

// Runs argv (argv[0] a path) and waits at most `o.timeout`; the child is always reaped.
inline ChildRun Spawn(const std::vector<std::string>& argv, const RunOptions& o = {}) {
  ChildRun run;
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe failed";
    return run;
  }
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv(*e);
    const auto eq = kv.find('=');
    if (eq != std::string::npos) merged[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : o.env) merged[k] = v;
  std::vector<std::string> env_strings, argv_copy = argv;
  for (const auto& [k, v] : merged) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, args;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  for (auto& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  pid_t pid = -1;
  const auto start = std::chrono::steady_clock::now();
  const int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    ADD_FAILURE() << "cannot start " << argv[0] << ": " << rc;
    return run;
  }
  const auto deadline = start + o.timeout;
  bool out_open = true, err_open = true;
  char buf[65536];
  while (out_open || err_open) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      run.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd fds[2] = {{out_open ? out_pipe[0] : -1, POLLIN, 0}, {err_open ? err_pipe[0] : -1, POLLIN, 0}};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    if (::poll(fds, 2, static_cast<int>(std::min<long long>(left, 1000))) < 0 && errno != EINTR) break;
    auto drain = [&](const pollfd& p, std::string& sink, bool& open) {
      if (!open || p.revents == 0) return;
      const ssize_t r = ::read(p.fd, buf, sizeof(buf));
      if (r <= 0) {
        open = false;
      } else {
        sink.append(buf, static_cast<size_t>(r));
      }
    };
    drain(fds[0], run.out, out_open);
    drain(fds[1], run.err, err_open);
    if (o.kill_after_lines >= 0 && !run.killed &&
        std::count(run.out.begin(), run.out.end(), '\n') >= o.kill_after_lines) {
      ::kill(pid, SIGKILL);
      run.killed = true;
    }
  }
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  int status = 0;
  rusage ru{};
  ::wait4(pid, &status, 0, &ru);
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  run.max_rss_kib = ru.ru_maxrss;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return run;
}

// The CLI's failure contract: exit 2 and exactly one line "kubehsm: error: ..." containing `part`.
inline void ExpectOneErrorLine(const ChildRun& r, const std::string& part) {
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_TRUE(r.err.starts_with("kubehsm: error: ")) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(part), std::string::npos) << "want '" << part << "' in: " << r.err;
}

inline std::string Sha256Hex(const std::string& der) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(der.data(), der.size(), md, &n, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < n; ++i) {
    s += kHex[md[i] >> 4];
    s += kHex[md[i] & 15];
  }
  return s;
}

// SHA-256 of the DER of a PEM certificate, "" when it does not parse.
inline std::string CertFingerprint(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return "";
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert.get(), &der);
  if (len <= 0) return "";
  std::string s(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return Sha256Hex(s);
}

// Checks every regular file under `root`: none is a temporary file of an atomic write, none is
// empty, and each parses as what its name says (.crt certificate, .key private key, .pub public
// key, .conf kubeconfig with credentials). Returns name → SHA-256 of every certificate found
// (kubeconfig client certificates included) for the ledger check.
inline std::map<std::string, std::string> ExpectEveryFileValid(const fs::path& root) {
  std::map<std::string, std::string> certs;
  std::error_code ec;
  if (!fs::exists(root, ec)) return certs;
  for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_symlink() || !it->is_regular_file()) continue;  // symlinks are the tricks tests plant
    const fs::path p = it->path();
    const std::string name = fs::relative(p, root).string();
    const std::string base = p.filename().string();
    EXPECT_EQ(base.find(".tmp-"), std::string::npos) << "temporary file left: " << name;
    if (base.find(".tmp-") != std::string::npos) continue;
    const std::string data = kubehsm::testing::ReadTestFile(p);
    EXPECT_FALSE(data.empty()) << "empty file: " << name;
    BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
    if (p.extension() == ".crt") {
      const std::string fp = CertFingerprint(data);
      EXPECT_FALSE(fp.empty()) << name << " is not a PEM certificate";
      if (!fp.empty()) certs[name] = fp;
    } else if (p.extension() == ".key") {
      EvpPkeyPtr k(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
      EXPECT_TRUE(k) << name << " is not a PEM private key";
    } else if (p.extension() == ".pub") {
      EvpPkeyPtr k(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
      EXPECT_TRUE(k) << name << " is not a PEM public key";
    } else if (p.extension() == ".conf") {
      auto creds = signer::pki::ReadKubeconfig(data);
      EXPECT_TRUE(creds.ok()) << name << ": " << creds.status().message();
      if (creds.ok() && !creds->client_cert_pem.empty()) {
        const std::string fp = CertFingerprint(creds->client_cert_pem);
        EXPECT_FALSE(fp.empty()) << name << ": client certificate does not parse";
        if (!fp.empty()) certs[name] = fp;
      }
    }
  }
  return certs;
}

// A fresh SoftHSM token with kubehsm.conf beside it (the ledger and audit log live there too), an
// output directory, and the kubehsm binary run against both.
class HardeningTest : public ::testing::Test {
 protected:
  HardeningTest() {
    token_.WriteKubehsmConfig();
    env_ = token_.ChildEnv();
  }

  ChildRun Kubehsm(std::vector<std::string> args, RunOptions o = {}) {
    args.insert(args.begin(), kubehsm::testing::KubehsmBinary().string());
    for (const auto& [k, v] : env_) o.env.emplace(k, v);
    return Spawn(args, o);
  }

  // Runs kubehsm with the fault shim as its module, forwarding to SoftHSM, with `control` as the
  // control file (see the header of tests/fault_pkcs11/fault_pkcs11.cc).
  ChildRun KubehsmWithFaults(const std::string& control, std::vector<std::string> args, RunOptions o = {}) {
    const fs::path file = dir() / "faults.conf";
    kubehsm::testing::WriteTestFile(file, control);
    o.env["KUBEHSM_FAULT_REAL_MODULE"] = KUBEHSM_DEFAULT_MODULE;
    o.env["KUBEHSM_FAULT_CONTROL"] = file.string();
    args.insert(args.begin(), {"--module", KUBEHSM_FAULT_PKCS11_PATH});
    return Kubehsm(std::move(args), std::move(o));
  }

  // `kubehsm init` arguments for node cp1 into `root`/pki and `root` (ECDSA P-256: fast).
  static std::vector<std::string> InitArgs(const fs::path& root, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> a{"init",        "--cert-dir",           (root / "pki").string(),  "--kubeconfig-dir",
                               root.string(), "--node-name",          "cp1",                    "--advertise-address",
                               "192.0.2.1",   "--encryption-algorithm", "ECDSA-P256"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  // SHA-256 fingerprints of every certificate in the ledger.
  std::set<std::string> LedgerFingerprints() {
    std::set<std::string> fps;
    ChildRun list = Kubehsm({"ledger", "list", "-o", "json"});
    EXPECT_EQ(list.exit_code, 0) << list.err;
    if (list.exit_code != 0) return fps;
    auto j = nlohmann::json::parse(list.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(j.is_array()) << list.out;
    if (!j.is_array()) return fps;
    for (const auto& row : j) fps.insert(row.value("sha256", ""));
    return fps;
  }

  // The consistency rule after any fault: every file under `root` is complete and parses, every
  // certificate on disk is in the ledger (the ledger may also hold certificates that never reached
  // disk: it is written before the file), and the audit trail verifies.
  void ExpectConsistent(const fs::path& root) {
    const auto on_disk = ExpectEveryFileValid(root);
    const auto ledger = LedgerFingerprints();
    for (const auto& [name, fp] : on_disk) {
      EXPECT_TRUE(ledger.contains(fp)) << name << " is on disk but not in the ledger";
    }
    ChildRun audit = Kubehsm({"audit", "verify"});
    EXPECT_EQ(audit.exit_code, 0) << audit.out << audit.err;
  }

  // Labels of the token's keys.
  std::vector<std::string> KeyLabels() {
    std::vector<std::string> labels;
    ChildRun list = Kubehsm({"keys", "list", "-o", "json"});
    EXPECT_EQ(list.exit_code, 0) << list.err;
    auto j = nlohmann::json::parse(list.out, nullptr, false);
    if (j.is_array()) {
      for (const auto& k : j) labels.push_back(k.value("label", ""));
    }
    return labels;
  }

  fs::path dir() const { return dir_.path(); }
  fs::path state_dir() const { return token_.dir(); }

  kubehsm::testing::SoftHsmToken token_;
  kubehsm::testing::TempDir dir_;
  std::map<std::string, std::string> env_;
};

}  // namespace kubehsm::hardening
