// Unit tests of the init orchestration over a MemoryKeyStore: layout, modes, kubeconfigs,
// idempotence, and one test per error path.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/file_util.h"
#include "signer/jwt/sa_keys.h"
#include "signer/memory_key_store.h"
#include "signer/pki/init.h"
#include "signer/pki/kubeconfig.h"
#include "signer/pki/pem.h"
#include "tests/pki/pki_test_util.h"
#include "tests/support/test_env.h"

namespace kubehsm::signer::pki {
namespace {

namespace fs = std::filesystem;
using namespace testutil;  // NOLINT(google-build-using-namespace): test helpers
using kubehsm::testing::TempDir;

class InitTest : public ::testing::Test {
 protected:
  InitTest() {
    options_.config.node_name = "cp1";
    options_.config.advertise_address = "10.0.0.10";
    options_.config.encryption_algorithm = KeyType::kEcP256;  // fast
    options_.cert_dir = dir_.path() / "pki";
    options_.kubeconfig_dir = dir_.path();
    options_.progress = [this](const std::string& line) { lines_.push_back(line); };
  }

  Result<RunSummary> Init() {
    lines_.clear();
    return RunInit(store_, options_);
  }

  bool Said(const std::string& line) const { return std::find(lines_.begin(), lines_.end(), line) != lines_.end(); }

  // Every regular file under the directory with its bytes.
  std::map<std::string, std::string> Snapshot() const {
    std::map<std::string, std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(dir_.path())) {
      if (e.is_regular_file()) files[fs::relative(e.path(), dir_.path()).string()] = ReadFileBounded(e.path(), 1 << 20).value();
    }
    return files;
  }

  TempDir dir_;
  MemoryKeyStore store_;
  PkiOptions options_;
  std::vector<std::string> lines_;
};

TEST_F(InitTest, WritesTheKubeadmLayoutWithModes) {
  auto r = Init();
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::vector<std::string> names;
  for (const auto& [name, bytes] : Snapshot()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "admin.conf", "controller-manager.conf", "kubelet.conf", "pki/apiserver-etcd-client.crt",
                       "pki/apiserver-etcd-client.key", "pki/apiserver-kubelet-client.crt",
                       "pki/apiserver-kubelet-client.key", "pki/apiserver.crt", "pki/apiserver.key", "pki/ca.crt",
                       "pki/etcd/ca.crt", "pki/etcd/healthcheck-client.crt", "pki/etcd/healthcheck-client.key",
                       "pki/etcd/peer.crt", "pki/etcd/peer.key", "pki/etcd/server.crt", "pki/etcd/server.key",
                       "pki/front-proxy-ca.crt", "pki/front-proxy-client.crt", "pki/front-proxy-client.key",
                       "pki/sa.pub", "scheduler.conf", "super-admin.conf"}));
  for (const auto& name : names) {
    const int want = name.ends_with(".crt") ? 0644 : 0600;
    EXPECT_EQ(FileMode(dir_.path() / name), want) << name;
  }
  EXPECT_EQ(FileMode(options_.cert_dir), 0755);
  EXPECT_EQ(FileMode(options_.cert_dir / "etcd"), 0755);
  auto keys = store_.List();
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 4u);
  EXPECT_EQ((*keys)[0].label, "ca");
  EXPECT_EQ((*keys)[1].label, "etcd-ca");
  EXPECT_EQ((*keys)[2].label, "front-proxy-ca");
  EXPECT_TRUE((*keys)[3].label.starts_with("kubehsm-sa:active:"));
  EXPECT_TRUE(Said("[certs] Generating \"apiserver\" certificate and key"));
  EXPECT_TRUE(Said("[certs] apiserver serving cert is signed for DNS names [cp1 kubernetes kubernetes.default "
                   "kubernetes.default.svc kubernetes.default.svc.cluster.local] and IPs [10.96.0.1 10.0.0.10]"));
  EXPECT_TRUE(Said("[kubeconfig] Writing \"admin.conf\" kubeconfig file"));
  EXPECT_EQ(r->keys_created, 4);
}

TEST_F(InitTest, KubeconfigsFollowTheProfiles) {
  options_.config.control_plane_endpoint = "lb.example.com";
  ASSERT_TRUE(Init().ok());
  X509Ptr ca = MustLoadCert(options_.cert_dir / "ca.crt");
  const auto ca_validity = CertificateValidity(ca.get()).value();
  for (const KubeconfigProfile& kc : KubeconfigProfiles()) {
    SCOPED_TRACE(std::string(kc.file_name));
    auto creds = ReadKubeconfig(ReadFileBounded(dir_.path() / kc.file_name, 1 << 20).value());
    ASSERT_TRUE(creds.ok()) << creds.status().message();
    const CertSpec spec = KubeconfigClientSpec(kc, options_.config);
    EXPECT_EQ(creds->user_name, spec.common_name);
    EXPECT_EQ(creds->cluster_name, "kubernetes");
    EXPECT_EQ(creds->current_context, spec.common_name + "@kubernetes");
    // Default version (1.36): kubelet.conf too is on the local endpoint (since 1.33).
    const bool local = kc.local_endpoint || kc.file_name == "kubelet.conf";
    EXPECT_EQ(creds->server, local ? "https://10.0.0.10:6443" : "https://lb.example.com:6443");
    EXPECT_EQ(creds->ca_pem, CertificateToPem(ca.get()).value());
    auto cert = ParseCertificatePem(creds->client_cert_pem);
    auto key = ParsePrivateKeyPem(creds->client_key_pem);
    ASSERT_TRUE(cert.ok() && key.ok());
    EXPECT_TRUE(CertificateHasKey(cert->get(), key->get()));
    EXPECT_TRUE(VerifyIssuedBy(cert->get(), ca.get()).ok());
    EXPECT_EQ(Hex(SubjectDer(cert->get()).value()), Hex(ExpectedName(spec.common_name, spec.organizations)));
    EXPECT_EQ(Hex(ExtensionDer(cert->get(), NID_ext_key_usage).value()), Hex(ExpectedEku({ExtKeyUsage::kClientAuth})));
    EXPECT_EQ(Hex(ExtensionDer(cert->get(), NID_key_usage).value()), "03 02 05 A0 ");
    EXPECT_EQ(ExtensionDer(cert->get(), NID_subject_alt_name).status().code(), StatusCode::kNotFound);
    // NotBefore = the CA's NotBefore; NotAfter = T + certificateValidityPeriod.
    auto v = CertificateValidity(cert->get()).value();
    EXPECT_EQ(v.not_before, ca_validity.not_before);
    EXPECT_EQ(v.not_after, std::chrono::time_point_cast<std::chrono::seconds>(options_.now + std::chrono::hours(8760)));
  }
}

// kubeadm-versions.md: init writes kubelet.conf on controlPlaneEndpoint in 1.32 and on the local
// endpoint from 1.33. A re-run with the new version keeps the old kubelet.conf (as with any other
// server difference) and warns naming the expected server; once removed, it is written anew.
TEST_F(InitTest, KubeletConfServerFollowsTheVersionAndReRunWarns) {
  options_.config.control_plane_endpoint = "lb.example.com";
  options_.config.kubernetes_version = KubernetesVersion{32};
  ASSERT_TRUE(Init().ok());
  const fs::path kubelet_conf = dir_.path() / "kubelet.conf";
  auto server = [&] { return ReadKubeconfig(ReadFileBounded(kubelet_conf, 1 << 20).value())->server; };
  EXPECT_EQ(server(), "https://lb.example.com:6443");
  options_.config.kubernetes_version = KubernetesVersion{33};
  ASSERT_TRUE(Init().ok());
  EXPECT_TRUE(Said("[kubeconfig] WARNING: " + kubelet_conf.string() +
                   " uses server https://lb.example.com:6443, expected https://10.0.0.10:6443"));
  EXPECT_EQ(server(), "https://lb.example.com:6443");
  fs::remove(kubelet_conf);
  ASSERT_TRUE(Init().ok());
  EXPECT_EQ(server(), "https://10.0.0.10:6443");
  EXPECT_EQ(ReadKubeconfig(ReadFileBounded(dir_.path() / "admin.conf", 1 << 20).value())->server,
            "https://lb.example.com:6443");
}

TEST_F(InitTest, RerunChangesNothingAndSaysSo) {
  ASSERT_TRUE(Init().ok());
  const auto before = Snapshot();
  const auto keys_before = store_.List().value();
  options_.now += std::chrono::hours(1);
  auto again = Init();
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(Snapshot(), before);
  EXPECT_EQ(store_.List()->size(), keys_before.size());
  EXPECT_EQ(again->written, 0);
  EXPECT_EQ(again->keys_created, 0);
  EXPECT_TRUE(Said("[certs] Using existing ca certificate authority"));
  EXPECT_TRUE(Said("[certs] Using existing etcd/server certificate and key on disk"));
  EXPECT_TRUE(Said("[certs] Using the existing \"sa\" key"));
  EXPECT_TRUE(Said("[kubeconfig] Using existing kubeconfig file: \"" + (dir_.path() / "admin.conf").string() + "\""));
  EXPECT_TRUE(Said("[init] Nothing changed: every certificate, key and kubeconfig file already exists and is valid"));
}

TEST_F(InitTest, CaCertificateWithoutTokenKeyFails) {
  ASSERT_TRUE(Init().ok());
  ASSERT_TRUE(store_.Remove("etcd-ca").ok());
  auto r = Init();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("token has no key 'etcd-ca'"), std::string::npos) << r.status().message();
}

TEST_F(InitTest, OverwriteCreatesTheMissingCaKeyAndReissuesItsLeaves) {
  ASSERT_TRUE(Init().ok());
  const std::string old_server = ReadFileBounded(options_.cert_dir / "etcd/server.crt", 1 << 20).value();
  ASSERT_TRUE(store_.Remove("etcd-ca").ok());
  options_.overwrite = true;
  auto r = Init();
  ASSERT_TRUE(r.ok()) << r.status().message();
  X509Ptr ca = MustLoadCert(options_.cert_dir / "etcd/ca.crt");
  EXPECT_TRUE(CertificateHasKey(ca.get(), store_.Find("etcd-ca")->public_key()));
  X509Ptr server = MustLoadCert(options_.cert_dir / "etcd/server.crt");
  EXPECT_TRUE(VerifyIssuedBy(server.get(), ca.get()).ok());
  EXPECT_NE(ReadFileBounded(options_.cert_dir / "etcd/server.crt", 1 << 20).value(), old_server);
}

TEST_F(InitTest, TokenKeyWithoutCaCertificateFails) {
  ASSERT_TRUE(Init().ok());
  fs::remove(options_.cert_dir / "front-proxy-ca.crt");
  auto r = Init();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("already holds a key 'front-proxy-ca'"), std::string::npos);
  EXPECT_FALSE(PathExists(options_.cert_dir / "front-proxy-ca.crt"));
}

TEST_F(InitTest, OverwriteReissuesTheCaCertificateFromTheExistingKey) {
  ASSERT_TRUE(Init().ok());
  fs::remove(options_.cert_dir / "front-proxy-ca.crt");
  options_.overwrite = true;
  ASSERT_TRUE(Init().ok());
  X509Ptr ca = MustLoadCert(options_.cert_dir / "front-proxy-ca.crt");
  EXPECT_TRUE(CertificateHasKey(ca.get(), store_.Find("front-proxy-ca")->public_key()));
  // Same key, same subject and SKI: the existing front-proxy-client still chains and is kept.
  EXPECT_TRUE(Said("[certs] Using existing front-proxy-client certificate and key on disk"));
}

TEST_F(InitTest, CaCertificateForAnotherKeyFails) {
  ASSERT_TRUE(Init().ok());
  auto other = SigningKey::GenerateSoftware(KeyType::kEcP256);
  auto cert = SelfSignCa(*other, CaSpec(GetCaProfile(CaId::kCa)), {options_.now, options_.now + std::chrono::hours(1)});
  ASSERT_TRUE(WriteFileAtomic(options_.cert_dir / "ca.crt", CertificateToPem(cert->get()).value(), 0644).ok());
  auto r = Init();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("does not match the token key 'ca'"), std::string::npos);
}

TEST_F(InitTest, LeafFromAnotherNodeFailsWithoutOverwrite) {
  ASSERT_TRUE(Init().ok());
  options_.config.node_name = "cp2";
  auto r = Init();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("existing apiserver certificate cannot be used"), std::string::npos)
      << r.status().message();
  options_.overwrite = true;
  ASSERT_TRUE(Init().ok());
  auto spec = SpecFromCertificate(MustLoadCert(options_.cert_dir / "etcd/peer.crt").get());
  EXPECT_EQ(spec->common_name, "cp2");
}

TEST_F(InitTest, SaPubWithoutTokenKeyFails) {
  ASSERT_TRUE(EnsureDirectory(options_.cert_dir, 0755).ok());
  ASSERT_TRUE(WriteFileAtomic(options_.cert_dir / "sa.pub", "-----BEGIN PUBLIC KEY-----\n", 0600).ok());
  auto r = RunInitPhase(store_, InitPhase::kSa, options_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no active service-account key"), std::string::npos);
}

TEST_F(InitTest, CertsPhaseWithoutCaFails) {
  auto r = RunInitPhase(store_, InitPhase::kCerts, options_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("run 'kubehsm init phase ca' first"), std::string::npos);
  EXPECT_FALSE(PathExists(options_.cert_dir / "apiserver.key"));
}

TEST_F(InitTest, ExternalEtcdSkipsTheEtcdSet) {
  options_.config.external_etcd = true;
  ASSERT_TRUE(Init().ok());
  EXPECT_FALSE(PathExists(options_.cert_dir / "etcd/server.crt"));
  EXPECT_FALSE(PathExists(options_.cert_dir / "apiserver-etcd-client.crt"));
  EXPECT_TRUE(PathExists(options_.cert_dir / "apiserver.crt"));
}

// A failure in the middle (the etcd directory cannot be created) stops the run with a clear
// message and leaves no partial or temporary file behind.
TEST_F(InitTest, FailureInTheMiddleLeavesNoPartialFile) {
  ASSERT_TRUE(RunInitPhase(store_, InitPhase::kCa, options_).ok());
  fs::remove(options_.cert_dir / "etcd/ca.crt");
  ASSERT_TRUE(store_.Remove("etcd-ca").ok());
  fs::remove(options_.cert_dir / "etcd");
  ASSERT_TRUE(WriteFileAtomic(options_.cert_dir / "etcd", "in the way", 0644).ok());
  auto r = RunInitPhase(store_, InitPhase::kCa, options_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find((options_.cert_dir / "etcd").string()), std::string::npos)
      << r.status().message();
  for (const auto& [name, bytes] : Snapshot()) EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
}

// The cert file of a pair cannot be written: the new key written just before is removed again.
TEST_F(InitTest, FailedCertificateWriteRemovesTheNewKey) {
  ASSERT_TRUE(RunInitPhase(store_, InitPhase::kCa, options_).ok());
  fs::create_directories(options_.cert_dir / "apiserver.crt");  // a directory where the file goes
  auto r = RunInitPhase(store_, InitPhase::kCerts, options_);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(PathExists(options_.cert_dir / "apiserver.key"));
}

TEST_F(InitTest, ReadOnlyDirectoryFailsCleanly) {
  ASSERT_TRUE(RunInitPhase(store_, InitPhase::kCa, options_).ok());
  // Root ignores directory modes, so as root (CI) the directory becomes a read-only bind mount of
  // itself; as another user its mode is enough.
  const std::string dir = options_.cert_dir.string();
  const bool as_root = ::geteuid() == 0;
  if (as_root) {
    ASSERT_EQ(testing::RunProcess({"mount", "--bind", dir, dir}).exit_code, 0);
    auto ro = testing::RunProcess({"mount", "-o", "remount,ro,bind", dir});
    if (ro.exit_code != 0) (void)testing::RunProcess({"umount", dir});
    ASSERT_EQ(ro.exit_code, 0) << ro.err;
  } else {
    fs::permissions(options_.cert_dir, fs::perms::owner_read | fs::perms::owner_exec);
  }
  auto r = RunInitPhase(store_, InitPhase::kCerts, options_);
  if (as_root) {
    EXPECT_EQ(testing::RunProcess({"umount", dir}).exit_code, 0);
  } else {
    fs::permissions(options_.cert_dir, fs::perms::owner_all);
  }
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().code() == StatusCode::kPermissionDenied || r.status().code() == StatusCode::kInternal)
      << r.status().message();
  EXPECT_NE(r.status().message().find(dir), std::string::npos) << r.status().message();
  for (const auto& [name, bytes] : Snapshot()) EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
}

TEST_F(InitTest, IssueNodeSetForAnotherControlPlaneNode) {
  ASSERT_TRUE(Init().ok());
  TempDir node2;
  PkiOptions o2 = options_;
  o2.config.node_name = "cp2";
  o2.config.advertise_address = "10.0.0.11";
  o2.cert_dir = node2.path() / "pki";
  o2.kubeconfig_dir = node2.path();
  auto r = IssueNodeSet(store_, options_.cert_dir, o2);
  ASSERT_TRUE(r.ok()) << r.status().message();
  for (const char* shared : {"ca.crt", "etcd/ca.crt", "front-proxy-ca.crt", "sa.pub"}) {
    EXPECT_EQ(ReadFileBounded(o2.cert_dir / shared, 1 << 20).value(),
              ReadFileBounded(options_.cert_dir / shared, 1 << 20).value())
        << shared;
  }
  EXPECT_FALSE(PathExists(node2.path() / "super-admin.conf"));
  EXPECT_FALSE(PathExists(node2.path() / "kubelet.conf"));
  EXPECT_TRUE(PathExists(node2.path() / "admin.conf"));
  auto api = SpecFromCertificate(MustLoadCert(o2.cert_dir / "apiserver.crt").get());
  EXPECT_NE(std::find(api->sans.dns.begin(), api->sans.dns.end(), "cp2"), api->sans.dns.end());
  EXPECT_EQ(api->sans.ips, (std::vector<std::string>{"10.96.0.1", "10.0.0.11"}));
  EXPECT_TRUE(VerifyIssuedBy(MustLoadCert(o2.cert_dir / "etcd/peer.crt").get(),
                             MustLoadCert(options_.cert_dir / "etcd/ca.crt").get())
                  .ok());
  // Per-node keys are fresh.
  EXPECT_NE(ReadFileBounded(o2.cert_dir / "apiserver-etcd-client.key", 1 << 20).value(),
            ReadFileBounded(options_.cert_dir / "apiserver-etcd-client.key", 1 << 20).value());
  EXPECT_EQ(store_.List()->size(), 4u);  // no key created
}

}  // namespace
}  // namespace kubehsm::signer::pki
