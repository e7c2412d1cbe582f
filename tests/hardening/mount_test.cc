// Disk full and read-only output directories (issue 8 item 3): a small tmpfs is mounted as the
// output directory of `init`, `certs sign-dir` and `certs renew`, then filled up or remounted
// read-only. Each run must fail with one clear line naming the cause, leave every file on disk
// complete (old or new, never half written, no temporary file), keep the ledger a superset of what
// is on disk and the audit trail verifiable, and complete once the space is back. Root only (mount);
// RUN_SERIAL. The tmpfs is unmounted in TearDown, also after a failed assertion.
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/hardening/hardening_util.h"
#include "tests/support/test_env.h"

namespace kubehsm::hardening {
namespace {

using kubehsm::testing::ReadTestFile;
using kubehsm::testing::RunProcess;
using kubehsm::testing::SourceDir;
using kubehsm::testing::WriteTestFile;

std::map<std::string, std::string> Snapshot(const fs::path& root) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) files[fs::relative(e.path(), root).string()] = ReadTestFile(e.path());
  }
  return files;
}

class MountTest : public HardeningTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
    fs::create_directories(mnt());
    // mode=0755: a tmpfs root is 1777 by default, which WriteFileAtomic rightly refuses.
    if (::mount("tmpfs", mnt().c_str(), "tmpfs", 0, "size=2m,mode=0755") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs: " << std::strerror(errno);
    }
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_ && ::umount2(mnt().c_str(), 0) != 0) ::umount2(mnt().c_str(), MNT_DETACH);
    mounted_ = false;
  }

  fs::path mnt() const { return dir() / "mnt"; }
  fs::path filler() const { return mnt() / "filler"; }

  // Fills the tmpfs so that about `free_bytes` remain.
  void FillLeaving(std::size_t free_bytes) {
    struct statvfs sv {};
    ASSERT_EQ(::statvfs(mnt().c_str(), &sv), 0);
    const std::size_t avail = sv.f_bavail * sv.f_frsize;
    ASSERT_GE(avail, free_bytes);
    // With free_bytes 0 the write stops at ENOSPC: the file system is then completely full.
    std::ofstream f(filler(), std::ios::binary);
    f << std::string(avail - free_bytes, 'F');
    f.close();
    ASSERT_GT(fs::file_size(filler()), 0u);
  }
  void FreeSpace() { fs::remove(filler()); }

  void RemountReadOnly(bool ro) {
    const unsigned long flags = MS_REMOUNT | (ro ? MS_RDONLY : 0);
    ASSERT_EQ(::mount("tmpfs", mnt().c_str(), "tmpfs", flags, "size=2m,mode=0755"), 0) << std::strerror(errno);
  }

  // Files of the output directory, without the filler.
  std::map<std::string, std::string> Files() {
    auto files = Snapshot(mnt());
    files.erase("filler");
    return files;
  }
  void ExpectOutputConsistent() {
    const auto files = Files();
    for (const auto& [name, bytes] : files) EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
    auto certs = ExpectEveryFileValid(mnt() / "node");
    const auto ledger = LedgerFingerprints();
    for (const auto& [name, fp] : certs) EXPECT_TRUE(ledger.contains(fp)) << name << " not in the ledger";
    ChildRun audit = Kubehsm({"audit", "verify"});
    EXPECT_EQ(audit.exit_code, 0) << audit.out << audit.err;
  }

  fs::path node() const { return mnt() / "node"; }
  fs::path box() const { return dir() / "box" / "pki"; }

  ChildRun Renew() {
    return Kubehsm({"certs", "renew", "all", "--cert-dir", (node() / "pki").string(), "--kubeconfig-dir",
                    node().string()});
  }

  // The signing box's CAs (off the tmpfs) and a generate-csr layout for cp1 on the tmpfs.
  void PrepareSignDir() {
    for (const char* phase : {"ca", "sa"}) {
      ChildRun r = Kubehsm({"init", "phase", phase, "--cert-dir", box().string(), "--encryption-algorithm", "ECDSA-P256"});
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    auto gen = RunProcess({"bash", (SourceDir() / "tests/pki/generate_csr_fixture.sh").string(), node().string(),
                           "cp1", "192.0.2.1", "ec"});
    ASSERT_EQ(gen.exit_code, 0) << gen.err;
    WriteTestFile(dir() / "kubeadm.yaml",
                  "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: cp1\n"
                  "localAPIEndpoint:\n  advertiseAddress: 192.0.2.1\n---\napiVersion: kubeadm.k8s.io/v1beta4\n"
                  "kind: ClusterConfiguration\nencryptionAlgorithm: ECDSA-P256\n");
  }
  ChildRun SignDir() {
    return Kubehsm({"certs", "sign-dir", "--config", (dir() / "kubeadm.yaml").string(), "--cert-dir",
                    (node() / "pki").string(), "--kubeconfig-dir", node().string(), "--ca-dir", box().string()});
  }
  // sign-dir's results: 7 leaf certificates and 5 kubeconfigs with client certificates.
  std::size_t SignedCount() {
    std::size_t n = 0;
    for (const auto& [name, fp] : ExpectEveryFileValid(node())) {
      if (name.find("ca.crt") == std::string::npos) ++n;
    }
    return n;
  }

  bool mounted_ = false;
};

// --- disk full --------------------------------------------------------------------------------------

TEST_F(MountTest, InitOnFullDiskFailsCleanlyAndCompletesWithSpace) {
  FillLeaving(40 * 1024);
  ChildRun r = Kubehsm(InitArgs(node()));
  ExpectOneErrorLine(r, "No space left on device");
  ExpectOutputConsistent();
  FreeSpace();
  ChildRun again = Kubehsm(InitArgs(node()));
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  ExpectOutputConsistent();
  EXPECT_EQ(ExpectEveryFileValid(node()).size(), 3u + 7u + 5u);
}

TEST_F(MountTest, SignDirOnFullDiskFailsCleanlyAndCompletesWithSpace) {
  PrepareSignDir();
  FillLeaving(16 * 1024);
  ChildRun r = SignDir();
  ExpectOneErrorLine(r, "No space left on device");
  ExpectOutputConsistent();
  FreeSpace();
  ChildRun again = SignDir();
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  ExpectOutputConsistent();
  EXPECT_EQ(SignedCount(), 12u);
}

TEST_F(MountTest, RenewOnFullDiskKeepsEveryFileValidAndCompletesWithSpace) {
  ChildRun init = Kubehsm(InitArgs(node()));
  ASSERT_EQ(init.exit_code, 0) << init.err;
  FillLeaving(0);  // renew replaces files: one free page would already be enough for it
  ChildRun r = Renew();
  ExpectOneErrorLine(r, "No space left on device");
  ExpectOutputConsistent();
  EXPECT_EQ(ExpectEveryFileValid(node()).size(), 3u + 7u + 5u) << "a file was lost";
  FreeSpace();
  ChildRun again = Renew();
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  ExpectOutputConsistent();
}

// --- read-only output directory ---------------------------------------------------------------------

TEST_F(MountTest, InitIntoReadOnlyDirectoryFailsCleanly) {
  fs::create_directories(node() / "pki");
  RemountReadOnly(true);
  ChildRun r = Kubehsm(InitArgs(node()));
  ExpectOneErrorLine(r, "Read-only file system");
  EXPECT_TRUE(Files().empty());
  EXPECT_TRUE(KeyLabels().empty()) << "a CA key without certificate was left in the token";
  RemountReadOnly(false);
  ChildRun again = Kubehsm(InitArgs(node()));
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  ExpectOutputConsistent();
}

TEST_F(MountTest, SignDirIntoReadOnlyDirectoryFailsCleanly) {
  PrepareSignDir();
  const auto before = Files();
  RemountReadOnly(true);
  ChildRun r = SignDir();
  ExpectOneErrorLine(r, "Read-only file system");
  EXPECT_EQ(Files(), before);
  RemountReadOnly(false);
  ExpectOutputConsistent();
  ChildRun again = SignDir();
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_EQ(SignedCount(), 12u);
}

TEST_F(MountTest, RenewInReadOnlyDirectoryFailsCleanly) {
  ChildRun init = Kubehsm(InitArgs(node()));
  ASSERT_EQ(init.exit_code, 0) << init.err;
  const auto before = Files();
  RemountReadOnly(true);
  ChildRun r = Renew();
  ExpectOneErrorLine(r, "Read-only file system");
  EXPECT_EQ(Files(), before);
  RemountReadOnly(false);
  ExpectOutputConsistent();
}

// --- read-only token store --------------------------------------------------------------------------

// The SoftHSM token directory made read-only (a read-only bind mount of itself, as systemd's
// ProtectSystem=strict does to a directory missing from ReadWritePaths=): SoftHSM accepts the login
// but cannot write its token files, and pkcs11-provider then found no key ("no private key at
// pkcs11:... through pkcs11-provider: no OpenSSL error queued"). Every command that uses the token
// must say that the token store is read-only, and work again once it is writable.
class TokenStoreMountTest : public HardeningTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "bind mounts need root";
    for (const char* phase : {"sa"}) {
      ChildRun r = Kubehsm({"init", "phase", phase, "--cert-dir", (dir() / "pki").string()});
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
  }
  void TearDown() override {
    if (mounted_ && ::umount2(tokens().c_str(), 0) != 0) ::umount2(tokens().c_str(), MNT_DETACH);
    mounted_ = false;
  }
  fs::path tokens() const { return token_.dir() / "tokens"; }
  void MakeReadOnly() {
    ASSERT_EQ(::mount(tokens().c_str(), tokens().c_str(), nullptr, MS_BIND, nullptr), 0) << std::strerror(errno);
    mounted_ = true;
    ASSERT_EQ(::mount(nullptr, tokens().c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr), 0)
        << std::strerror(errno);
  }
  ChildRun SignToken() {
    return Kubehsm({"sa", "sign", "--issuer", "https://kubernetes.default.svc.cluster.local", "--audience", "api",
                    "--namespace", "default", "--service-account", "builder", "--uid", "7d1c",
                    "--expiration-seconds", "600"});
  }
  bool mounted_ = false;
};

TEST_F(TokenStoreMountTest, ReadOnlyTokenStoreIsNamedInTheError) {
  ChildRun before = SignToken();
  ASSERT_EQ(before.exit_code, 0) << before.err;
  MakeReadOnly();
  const std::string want = "SoftHSM's token store " + tokens().string() + " is read-only";
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"sa", "sign", "--issuer", "https://kubernetes.default.svc.cluster.local", "--audience", "api", "--namespace",
            "default", "--service-account", "builder", "--uid", "7d1c", "--expiration-seconds", "600"},
           {"keys", "generate", "--label", "extra", "--type", "ecdsa-p256"},
           {"sa", "list"}}) {
    ChildRun r = Kubehsm(args);
    ExpectOneErrorLine(r, want);
    EXPECT_NE(r.err.find("Read-only file system"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("no OpenSSL error queued"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  // The signing daemon refuses to start, saying why (kube-apiserver would otherwise wait for a
  // signer that cannot sign).
  fs::create_directories(dir() / "run");
  fs::permissions(dir() / "run", fs::perms::owner_all);
  RunOptions quick;
  quick.timeout = std::chrono::seconds(30);
  ChildRun serve = Kubehsm({"serve", "--socket", (dir() / "run/signer.sock").string(),
                            "--max-token-expiration-seconds", "3600"},
                           quick);
  EXPECT_FALSE(serve.timed_out);
  ExpectOneErrorLine(serve, want);
  EXPECT_FALSE(fs::exists(dir() / "run/signer.sock"));
  ASSERT_EQ(::umount2(tokens().c_str(), 0), 0) << std::strerror(errno);
  mounted_ = false;
  ChildRun after = SignToken();
  EXPECT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(KeyLabels().size(), 1u) << "nothing was created while the store was read-only";
}

}  // namespace
}  // namespace kubehsm::hardening
