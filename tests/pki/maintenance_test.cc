// Unit tests of check-expiration formatting, renew and verify over a MemoryKeyStore.
#include <gtest/gtest.h>
#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/file_util.h"
#include "signer/memory_key_store.h"
#include "signer/pki/kubeconfig.h"
#include "signer/pki/maintenance.h"
#include "signer/pki/pem.h"
#include "tests/pki/pki_test_util.h"
#include "tests/support/test_env.h"

namespace kubehsm::signer::pki {
namespace {

using namespace testutil;  // NOLINT(google-build-using-namespace): test helpers
using kubehsm::testing::TempDir;

TEST(ExpirationTest, ShortHumanDurationLikeKubeadm) {
  using std::chrono::seconds;
  EXPECT_EQ(ShortHumanDuration(seconds(-5)), "<invalid>");
  EXPECT_EQ(ShortHumanDuration(seconds(-1)), "0s");
  EXPECT_EQ(ShortHumanDuration(seconds(59)), "59s");
  EXPECT_EQ(ShortHumanDuration(seconds(42 * 60 + 5)), "42m");
  EXPECT_EQ(ShortHumanDuration(seconds(23 * 3600 + 59)), "23h");
  EXPECT_EQ(ShortHumanDuration(seconds(47 * 3600)), "1d");  // Go: hours/24 from 24h on
  EXPECT_EQ(ShortHumanDuration(seconds(364 * 86400 + 100)), "364d");
  EXPECT_EQ(ShortHumanDuration(seconds(3650LL * 86400)), "10y");
}

TEST(ExpirationTest, TextTableHasKubeadmLayout) {
  ExpirationReport r;
  r.now = Clock::from_time_t(1767225600);  // 2026-01-01T00:00:00Z
  r.certificates = {{"admin.conf", r.now + std::chrono::hours(24 * 364), "ca", false, false},
                    {"etcd-peer", {}, "etcd-ca", false, true}};
  r.authorities = {{"ca", r.now + std::chrono::hours(24 * 3650), "", false, false}};
  EXPECT_EQ(FormatExpirationText(r),
            // Column 0 is as wide as its widest cell ("!MISSING! etcd-peer") plus padding 3.
            "CERTIFICATE           EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED\n"
            "admin.conf            Dec 31, 2026 00:00 UTC   364d            ca                      no      \n"
            "!MISSING! etcd-peer                                                                    \n"
            "\n"
            "CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED\n"
            "ca                      Dec 30, 2035 00:00 UTC   10y             no      \n");
  const std::string json = FormatExpirationJson(r);
  EXPECT_NE(json.find("\"kind\": \"CertificateExpirationInfo\""), std::string::npos);
  EXPECT_NE(json.find("\"expirationDate\": \"2026-12-31T00:00:00Z\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"residualTime\": 31449600"), std::string::npos) << json;
  EXPECT_NE(FormatExpirationYaml(r).find("apiVersion: output.kubeadm.k8s.io/v1alpha3\n"), std::string::npos);
}

class MaintenanceTest : public ::testing::Test {
 protected:
  MaintenanceTest() {
    options_.config.node_name = "cp1";
    options_.config.advertise_address = "10.0.0.10";
    options_.config.apiserver_cert_sans = {"extra.example.com"};
    options_.config.encryption_algorithm = KeyType::kEcP256;
    options_.cert_dir = dir_.path() / "pki";
    options_.kubeconfig_dir = dir_.path();
    options_.now = Clock::now();
    EXPECT_TRUE(RunInit(store_, options_).ok());
  }
  TempDir dir_;
  MemoryKeyStore store_;
  PkiOptions options_;
};

TEST_F(MaintenanceTest, CheckExpirationListsKubeadmRows) {
  auto r = CheckExpiration(options_.cert_dir, options_.kubeconfig_dir, options_.config, options_.now, &store_);
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::vector<std::string> names;
  for (const auto& c : r->certificates) names.push_back(c.name);
  EXPECT_EQ(names, (std::vector<std::string>{"admin.conf", "apiserver", "apiserver-etcd-client",
                                             "apiserver-kubelet-client", "controller-manager.conf",
                                             "etcd-healthcheck-client", "etcd-peer", "etcd-server",
                                             "front-proxy-client", "scheduler.conf", "super-admin.conf"}));
  ASSERT_EQ(r->authorities.size(), 3u);
  EXPECT_EQ(r->authorities[1].name, "etcd-ca");
  ASSERT_TRUE(store_.Remove("front-proxy-ca").ok());
  r = CheckExpiration(options_.cert_dir, options_.kubeconfig_dir, options_.config, options_.now, &store_);
  EXPECT_TRUE(r->authorities[2].externally_managed);
}

TEST_F(MaintenanceTest, RenewKeepsSubjectSansAndEkusWithNewKeyAndSerial) {
  X509Ptr old = MustLoadCert(options_.cert_dir / "apiserver.crt");
  const std::string old_key = ReadFileBounded(options_.cert_dir / "apiserver.key", 1 << 20).value();
  const std::string old_admin = ReadFileBounded(dir_.path() / "admin.conf", 1 << 20).value();
  // Renew with a config that no longer lists the extra SAN: SANs come from the certificate.
  PkiOptions renew = options_;
  renew.config.apiserver_cert_sans.clear();
  renew.now = options_.now + std::chrono::hours(24);
  auto r = RenewCertificates(store_, {"all"}, renew);
  ASSERT_TRUE(r.ok()) << r.status().message();
  X509Ptr fresh = MustLoadCert(options_.cert_dir / "apiserver.crt");
  EXPECT_EQ(SubjectDer(fresh.get()).value(), SubjectDer(old.get()).value());
  EXPECT_EQ(ExtensionDer(fresh.get(), NID_subject_alt_name).value(), ExtensionDer(old.get(), NID_subject_alt_name).value());
  EXPECT_EQ(ExtensionDer(fresh.get(), NID_ext_key_usage).value(), ExtensionDer(old.get(), NID_ext_key_usage).value());
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(fresh.get()), X509_get0_serialNumber(old.get())), 0);
  EXPECT_NE(ReadFileBounded(options_.cert_dir / "apiserver.key", 1 << 20).value(), old_key);
  EXPECT_EQ(CertificateValidity(fresh.get())->not_after,
            std::chrono::time_point_cast<std::chrono::seconds>(renew.now + std::chrono::hours(8760)));
  // admin.conf: only the credentials changed.
  const std::string new_admin = ReadFileBounded(dir_.path() / "admin.conf", 1 << 20).value();
  EXPECT_NE(new_admin, old_admin);
  auto before = ReadKubeconfig(old_admin);
  auto after = ReadKubeconfig(new_admin);
  ASSERT_TRUE(before.ok() && after.ok());
  EXPECT_EQ(after->server, before->server);
  EXPECT_EQ(after->user_name, before->user_name);
  EXPECT_NE(after->client_cert_pem, before->client_cert_pem);
  EXPECT_TRUE(VerifyIssuedBy(ParseCertificatePem(after->client_cert_pem)->get(),
                             MustLoadCert(options_.cert_dir / "ca.crt").get())
                  .ok());
  // Everything still verifies.
  for (const auto& item : VerifyPki(options_.cert_dir, options_.kubeconfig_dir, &options_.config, renew.now, &store_)) {
    EXPECT_TRUE(item.ok) << item.name << ": " << (item.problems.empty() ? "" : item.problems[0]);
  }
}

TEST_F(MaintenanceTest, RenewRejectsUnknownNameAndReportsMissing) {
  EXPECT_EQ(RenewCertificates(store_, {"kubelet.conf"}, options_).status().code(), StatusCode::kInvalidArgument);
  std::filesystem::remove(options_.cert_dir / "front-proxy-client.crt");
  EXPECT_EQ(RenewCertificates(store_, {"front-proxy-client"}, options_).status().code(), StatusCode::kNotFound);
}

// With the cluster's configuration, the old certificate must be exactly what the profile yields:
// a configuration with other SANs refuses (diff-style), and nothing is renewed.
TEST_F(MaintenanceTest, RenewWithConfigRefusesSansThatDifferFromTheProfile) {
  const std::string before = ReadFileBounded(options_.cert_dir / "apiserver.crt", 1 << 20).value();
  PkiOptions renew = options_;
  renew.config.apiserver_cert_sans = {"other.example.com"};
  RenewOptions checks;
  checks.config_given = true;
  auto r = RenewCertificates(store_, {"apiserver"}, renew, checks);
  ASSERT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(r.status().message().find("SANs of the profile missing: DNS:other.example.com"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(ReadFileBounded(options_.cert_dir / "apiserver.crt", 1 << 20).value(), before);
  // The same configuration as init renews, and the ledger check is consulted with CA and profile.
  std::vector<std::string> asked;
  checks.issued = [&](const X509*, std::string_view ca, std::string_view profile) {
    asked.push_back(std::string(ca) + "/" + std::string(profile));
    return OkStatus();
  };
  ASSERT_TRUE(RenewCertificates(store_, {"apiserver", "admin.conf"}, options_, checks).ok());
  EXPECT_EQ(asked, (std::vector<std::string>{"ca/apiserver", "ca/admin.conf"}));
  checks.issued = [](const X509*, std::string_view, std::string_view) { return PermissionDenied("not in the ledger"); };
  auto refused = RenewCertificates(store_, {"apiserver"}, options_, checks);
  ASSERT_EQ(refused.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(refused.status().message().find("not in the ledger"), std::string::npos);
}

TEST_F(MaintenanceTest, VerifyFlagsWrongCaModeAndKeyOnDisk) {
  auto items = VerifyPki(options_.cert_dir, options_.kubeconfig_dir, &options_.config, options_.now, &store_);
  for (const auto& i : items) EXPECT_TRUE(i.ok) << i.name;
  // front-proxy-client replaced by a certificate from the wrong CA.
  ASSERT_TRUE(WriteFileAtomic(options_.cert_dir / "front-proxy-client.crt",
                              ReadFileBounded(options_.cert_dir / "apiserver-kubelet-client.crt", 1 << 20).value(), 0644)
                  .ok());
  ASSERT_TRUE(WriteFileAtomic(options_.cert_dir / "ca.key", "x", 0600).ok());
  std::filesystem::permissions(dir_.path() / "admin.conf", std::filesystem::perms::owner_read |
                                                               std::filesystem::perms::owner_write |
                                                               std::filesystem::perms::others_read);
  items = VerifyPki(options_.cert_dir, options_.kubeconfig_dir, &options_.config, options_.now, &store_);
  std::map<std::string, bool> ok;
  for (const auto& i : items) ok[i.name] = i.ok;
  EXPECT_FALSE(ok["front-proxy-client"]);
  EXPECT_FALSE(ok["ca"]);
  EXPECT_FALSE(ok["admin.conf"]);
  EXPECT_TRUE(ok["apiserver"]);
  const std::string report = FormatVerifyReport(items);
  EXPECT_NE(report.find("does not chain to its CA"), std::string::npos) << report;
  EXPECT_NE(report.find("admin.conf has mode 0604, want 0600"), std::string::npos) << report;
}

TEST_F(MaintenanceTest, TreeTextAndDotNameEveryCaAndFile) {
  const std::string text = RenderPkiTree(options_.cert_dir, options_.kubeconfig_dir, false).value();
  const std::string dot = RenderPkiTree(options_.cert_dir, options_.kubeconfig_dir, true).value();
  for (const auto& l : LeafProfiles()) {
    EXPECT_NE(text.find(std::string(l.name)), std::string::npos) << l.name;
    EXPECT_NE(dot.find("\"etcd-ca\" -> \"etcd-peer\""), std::string::npos);
  }
  EXPECT_NE(text.find((options_.cert_dir / "etcd/ca.crt").string()), std::string::npos);
  EXPECT_TRUE(dot.starts_with("digraph kubehsm_pki {"));
  EXPECT_NE(dot.find("\"ca\" -> \"admin.conf\""), std::string::npos);
}

TEST_F(MaintenanceTest, TreeDrawsTokenKeysForKubehsmPki) {
  const std::string text = RenderPkiTree(options_.cert_dir, options_.kubeconfig_dir, false).value();
  EXPECT_TRUE(text.starts_with("PKCS#11 token (private keys never leave it)\n")) << text;
  EXPECT_NE(text.find("├── ca  [token key 'ca'"), std::string::npos) << text;
  EXPECT_EQ(text.find("file key"), std::string::npos) << text;
  EXPECT_EQ(text.find("(missing)"), std::string::npos) << text;
  // sa.pub: kube-apiserver reads it only when kubehsm serve is not its signer.
  EXPECT_NE(text.find("--service-account-key-file only without 'kubehsm serve'"), std::string::npos) << text;
}

TEST_F(MaintenanceTest, TreeDrawsKeysOnDiskAsFileKeys) {
  // A plain kubeadm PKI: CA and service-account keys are files.
  for (const char* key : {"ca.key", "front-proxy-ca.key", "etcd/ca.key", "sa.key"}) {
    ASSERT_TRUE(WriteFileAtomic(options_.cert_dir / key, "not checked", 0600).ok()) << key;
  }
  std::filesystem::remove(options_.cert_dir / "apiserver.crt");
  const std::string text = RenderPkiTree(options_.cert_dir, options_.kubeconfig_dir, false).value();
  EXPECT_EQ(text.find("PKCS#11 token"), std::string::npos) << text;
  EXPECT_TRUE(text.starts_with("kubeadm PKI in " + options_.cert_dir.string() +
                               " (every CA and service-account key is a file on disk)\n"))
      << text;
  EXPECT_NE(text.find("├── ca  [file key " + (options_.cert_dir / "ca.key").string()), std::string::npos) << text;
  EXPECT_NE(text.find("└── sa  [file key " + (options_.cert_dir / "sa.key").string()), std::string::npos) << text;
  EXPECT_NE(text.find("--service-account-signing-key-file (signing)"), std::string::npos) << text;
  EXPECT_NE(text.find("apiserver.crt + .key (missing)"), std::string::npos) << text;
  const std::string dot = RenderPkiTree(options_.cert_dir, options_.kubeconfig_dir, true).value();
  EXPECT_NE(dot.find("\"ca key\" -> \"ca\""), std::string::npos) << dot;
  EXPECT_EQ(dot.find("token -> \"ca\""), std::string::npos) << dot;
  // One CA key back in the token: a mixed PKI says so.
  std::filesystem::remove(options_.cert_dir / "ca.key");
  const std::string mixed = RenderPkiTree(options_.cert_dir, options_.kubeconfig_dir, false).value();
  EXPECT_NE(mixed.find("(3 of 4 CA/service-account keys are files on disk"), std::string::npos) << mixed;
  EXPECT_NE(mixed.find("├── ca  [token key 'ca'"), std::string::npos) << mixed;
}

TEST_F(MaintenanceTest, TreeRefusesAMissingDirectory) {
  auto tree = RenderPkiTree(dir_.path() / "no-such-dir", options_.kubeconfig_dir, false);
  ASSERT_FALSE(tree.ok());
  EXPECT_EQ(tree.status().code(), StatusCode::kNotFound);
  EXPECT_NE(tree.status().message().find("no-such-dir is not a directory"), std::string::npos)
      << tree.status().message();
}

TEST_F(MaintenanceTest, VerifyCheckTokenFailsForSaPubWithoutItsTokenKey) {
  auto items = VerifyPki(options_.cert_dir, options_.kubeconfig_dir, &options_.config, options_.now, &store_);
  const auto sa_item = [&] {
    for (const auto& i : items) {
      if (i.name == "sa") return i;
    }
    return VerifyItem{};
  };
  EXPECT_TRUE(sa_item().ok) << FormatVerifyReport(items);
  std::string sa_label;
  const std::vector<StoredKeyInfo> keys = store_.List().value();
  for (const auto& k : keys) {
    if (k.label.starts_with("kubehsm-sa:")) sa_label = k.label;
  }
  ASSERT_FALSE(sa_label.empty());
  ASSERT_TRUE(store_.Remove(sa_label).ok());
  items = VerifyPki(options_.cert_dir, options_.kubeconfig_dir, &options_.config, options_.now, &store_);
  EXPECT_FALSE(sa_item().ok);
  const std::string report = FormatVerifyReport(items);
  EXPECT_NE(report.find("the token holds no service-account key for sa.pub"), std::string::npos) << report;
  // Without the token the file alone is still fine.
  items = VerifyPki(options_.cert_dir, options_.kubeconfig_dir, &options_.config, options_.now, nullptr);
  EXPECT_TRUE(sa_item().ok) << FormatVerifyReport(items);
}

}  // namespace
}  // namespace kubehsm::signer::pki
