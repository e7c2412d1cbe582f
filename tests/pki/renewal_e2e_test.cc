// Air-gapped renewal end to end with the real binary on a fresh SoftHSM token: a kubeadm-shaped
// node made by `kubehsm init` (its CA certificates only, no CA key: external-CA mode), then
// `certs renewal-csrs` on the node (no token), `certs sign-dir --renew` on the signing box (the
// token), `certs install-renewed` on the node, checked by `certs check-expiration`, `pki verify`
// and `openssl verify`; no private key ever travels; the refusals (a changed subject, a
// certificate that does not carry the pending key) and the version following of an upgrade.
#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "signer/pki/kubeconfig.h"
#include "signer/pki/pem.h"
#include "tests/pki/csr_test_util.h"
#include "tests/support/test_env.h"

namespace kubehsm::signer::pki {
namespace {

namespace fs = std::filesystem;
using kubehsm::testing::ProcessResult;
using kubehsm::testing::ReadTestFile;
using kubehsm::testing::RunProcess;
using kubehsm::testing::WriteTestFile;

constexpr const char* kLeaves[] = {"apiserver", "apiserver-kubelet-client", "front-proxy-client",   "etcd/server",
                                   "etcd/peer", "etcd/healthcheck-client",  "apiserver-etcd-client"};
constexpr const char* kConfs[] = {"admin.conf", "super-admin.conf", "kubelet.conf", "controller-manager.conf",
                                  "scheduler.conf"};
const std::map<std::string, std::string> kCaOf = {{"apiserver", "ca"},
                                                  {"apiserver-kubelet-client", "ca"},
                                                  {"front-proxy-client", "front-proxy-ca"},
                                                  {"etcd/server", "etcd/ca"},
                                                  {"etcd/peer", "etcd/ca"},
                                                  {"etcd/healthcheck-client", "etcd/ca"},
                                                  {"apiserver-etcd-client", "etcd/ca"}};

class RenewalTest : public testutil::KubehsmCaFixture {
 protected:
  fs::path NodeDir() const { return dir() / "node"; }
  fs::path NodePki() const { return NodeDir() / "pki"; }

  // A kubeadm config for node cp1 at `version`; `validity` ("2h0m0s") ages the certificates.
  fs::path Config(const std::string& name, const std::string& version, const std::string& validity = "") const {
    const fs::path p = dir() / name;
    WriteTestFile(p,
                  "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: cp1\n"
                  "localAPIEndpoint:\n  advertiseAddress: 192.0.2.1\n---\napiVersion: kubeadm.k8s.io/v1beta4\n"
                  "kind: ClusterConfiguration\nencryptionAlgorithm: ECDSA-P256\nkubernetesVersion: " +
                      version + "\n" + (validity.empty() ? "" : "certificateValidityPeriod: " + validity + "\n"));
    return p;
  }

  // The node as `kubeadm init` in external-CA mode leaves it: the CA certificates of the box (no
  // keys), then every leaf and kubeconfig issued by `kubehsm init` with a short validity (aged).
  void MakeNode(const std::string& version = "v1.36.0") {
    for (const char* f : {"ca.crt", "front-proxy-ca.crt", "etcd/ca.crt", "sa.pub"}) {
      WriteTestFile(NodePki() / f, ReadTestFile(ca_dir() / f), std::string(f) == "sa.pub" ? 0600 : 0644);
    }
    auto r = Kubehsm({"init", "--config", Config("aged.yaml", version, "2h0m0s").string(), "--cert-dir",
                      NodePki().string(), "--kubeconfig-dir", NodeDir().string()});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    for (const char* ca : {"ca", "front-proxy-ca", "etcd/ca"}) {
      ASSERT_FALSE(fs::exists(NodePki() / (std::string(ca) + ".key"))) << ca;
    }
  }

  // The node side runs without a token: no kubehsm config (KUBEHSM_CONFIG unset), no SoftHSM one.
  ProcessResult NodeKubehsm(std::vector<std::string> args) {
    args.insert(args.begin(), kubehsm::testing::KubehsmBinary().string());
    return RunProcess(args, {{"SOFTHSM2_CONF", (dir() / "no-such-softhsm2.conf").string()}});
  }
  ProcessResult RenewalCsrs(std::vector<std::string> extra) {
    std::vector<std::string> args = {
        "certs", "renewal-csrs", "--cert-dir", NodePki().string(), "--kubeconfig-dir", NodeDir().string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return NodeKubehsm(args);
  }
  ProcessResult SignDirRenewTar(const fs::path& config, const fs::path& in, const fs::path& out) {
    return Kubehsm({"certs", "sign-dir", "--renew", "--config", config.string(), "--ca-dir", ca_dir().string(),
                    "--in-tar", in.string(), "--out-tar", out.string()});
  }
  ProcessResult Install(const fs::path& tar) {
    return NodeKubehsm({"certs", "install-renewed", "--in-tar", tar.string(), "--cert-dir", NodePki().string(),
                        "--kubeconfig-dir", NodeDir().string()});
  }

  // Every private key and certificate of the node: "<leaf>.key", "<leaf>.crt", "<conf>.key", "<conf>.crt".
  std::map<std::string, std::string> NodeMaterial() {
    std::map<std::string, std::string> m;
    for (const char* leaf : kLeaves) {
      m[std::string(leaf) + ".key"] = ReadTestFile(NodePki() / (std::string(leaf) + ".key"));
      m[std::string(leaf) + ".crt"] = ReadTestFile(NodePki() / (std::string(leaf) + ".crt"));
    }
    for (const char* conf : kConfs) {
      auto creds = ReadKubeconfig(ReadTestFile(NodeDir() / conf));
      EXPECT_TRUE(creds.ok()) << conf;
      if (!creds.ok()) continue;
      m[std::string(conf) + ".key"] = creds->client_key_pem;
      m[std::string(conf) + ".crt"] = creds->client_cert_pem;
    }
    return m;
  }

  // Fails the test when the archive holds a private key in any form (PEM, or inside a kubeconfig).
  void ExpectNoPrivateKeyIn(const fs::path& tar) {
    const std::string bytes = ReadTestFile(tar);
    EXPECT_EQ(bytes.find("PRIVATE KEY"), std::string::npos) << tar;
    EXPECT_EQ(bytes.find("client-key-data"), std::string::npos) << tar;
    auto list = RunProcess({"tar", "-tf", tar.string()});
    ASSERT_EQ(list.exit_code, 0) << list.err;
    EXPECT_EQ(list.out.find(".key"), std::string::npos) << list.out;
    // Each member, unpacked: no private key PEM parses out of it.
    const fs::path x = dir() / ("scan-" + tar.filename().string());
    fs::create_directories(x);
    ASSERT_EQ(RunProcess({"tar", "-C", x.string(), "-xf", tar.string()}).exit_code, 0);
    for (const auto& e : fs::recursive_directory_iterator(x)) {
      if (!e.is_regular_file()) continue;
      EXPECT_FALSE(ParsePrivateKeyPem(ReadTestFile(e.path())).ok()) << e.path();
    }
  }

  // Residual seconds of each certificate row of `check-expiration -o json`, by name.
  std::map<std::string, long long> Residuals() {
    auto r = NodeKubehsm({"certs", "check-expiration", "--cert-dir", NodePki().string(), "--kubeconfig-dir",
                          NodeDir().string(), "-o", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::map<std::string, long long> out;
    size_t pos = 0;
    while ((pos = r.out.find("\"name\": \"", pos)) != std::string::npos) {
      pos += 9;
      const std::string name = r.out.substr(pos, r.out.find('"', pos) - pos);
      const size_t rt = r.out.find("\"residualTime\": ", pos);
      if (rt == std::string::npos) break;
      out[name] = std::stoll(r.out.substr(rt + 16));
    }
    return out;
  }
};

TEST_F(RenewalTest, AgedNodeRenewsThroughTheAirGapWithNewKeysAndNoKeyInEitherArchive) {
  MakeNode();
  const auto before = NodeMaterial();
  for (const auto& [name, residual] : Residuals()) {
    if (!name.ends_with("ca")) {
      EXPECT_LT(residual, 2 * 3600) << name;  // aged: expires within 2h
    }
  }
  const fs::path csrs = dir() / "node-renew.tar", signed_tar = dir() / "signed.tar";
  auto r = RenewalCsrs({"--out-tar", csrs.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("12 CSR(s), 12 new key(s) pending"), std::string::npos) << r.out;
  for (const char* leaf : kLeaves) {
    const fs::path pending = NodePki() / (std::string(leaf) + ".key.pending");
    ASSERT_TRUE(fs::exists(pending)) << leaf;
    EXPECT_EQ(fs::status(pending).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  }
  ExpectNoPrivateKeyIn(csrs);
  // The old certificates are untouched until install.
  EXPECT_EQ(NodeMaterial(), before);

  r = SignDirRenewTar(Config("cluster.yaml", "v1.36.0"), csrs, signed_tar);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("Done: 12 certificate(s) signed, 0 kept"), std::string::npos) << r.out;
  ExpectNoPrivateKeyIn(signed_tar);

  r = Install(signed_tar);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("12 certificate(s) installed, 12 with a new key"), std::string::npos) << r.out;
  const auto after = NodeMaterial();
  for (const auto& [name, pem] : after) EXPECT_NE(pem, before.at(name)) << name << " did not change";
  for (const char* leaf : kLeaves) EXPECT_FALSE(fs::exists(NodePki() / (std::string(leaf) + ".key.pending")));
  for (const char* conf : kConfs) EXPECT_FALSE(fs::exists(NodeDir() / (std::string(conf) + ".key.pending")));
  // check-expiration on the node shows the new dates: a year instead of two hours.
  const auto residuals = Residuals();
  EXPECT_EQ(residuals.size(), 14u);
  for (const auto& [name, residual] : residuals) EXPECT_GT(residual, 364LL * 24 * 3600) << name;
  // Independent checks: openssl verifies every result under the CA kubeadm expects.
  for (const auto& [leaf, ca] : kCaOf) {
    auto v = RunProcess(
        {"openssl", "verify", "-CAfile", (NodePki() / (ca + ".crt")).string(), (NodePki() / (leaf + ".crt")).string()});
    EXPECT_EQ(v.exit_code, 0) << leaf << ": " << v.out << v.err;
  }
  for (const char* conf : kConfs) {
    WriteTestFile(dir() / "client.crt", after.at(std::string(conf) + ".crt"));
    auto v = RunProcess({"openssl", "verify", "-CAfile", (NodePki() / "ca.crt").string(), "-purpose", "sslclient",
                         (dir() / "client.crt").string()});
    EXPECT_EQ(v.exit_code, 0) << conf << ": " << v.out << v.err;
  }
  auto verify = Kubehsm({"pki", "verify", "--cert-dir", NodePki().string(), "--kubeconfig-dir", NodeDir().string(),
                         "--config", Config("cluster.yaml", "v1.36.0").string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_EQ(verify.out.find("FAIL"), std::string::npos) << verify.out;
}

TEST_F(RenewalTest, ReuseKeysKeepsEveryKeyAndRenewsEveryCertificate) {
  MakeNode();
  const auto before = NodeMaterial();
  const fs::path csrs = dir() / "node-renew.tar", signed_tar = dir() / "signed.tar";
  auto r = RenewalCsrs({"--out-tar", csrs.string(), "--reuse-keys"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  for (const auto& e : fs::recursive_directory_iterator(NodeDir())) {
    EXPECT_EQ(e.path().string().find(".pending"), std::string::npos) << e.path();
  }
  ExpectNoPrivateKeyIn(csrs);
  ASSERT_EQ(SignDirRenewTar(Config("cluster.yaml", "v1.36.0"), csrs, signed_tar).exit_code, 0);
  r = Install(signed_tar);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("12 certificate(s) installed, 0 with a new key"), std::string::npos) << r.out;
  const auto after = NodeMaterial();
  for (const auto& [name, pem] : after) {
    if (name.ends_with(".key")) {
      EXPECT_EQ(pem, before.at(name)) << name;
    } else {
      EXPECT_NE(pem, before.at(name)) << name;
    }
  }
  for (const auto& [name, residual] : Residuals()) EXPECT_GT(residual, 364LL * 24 * 3600) << name;
}

// A renewal CSR whose subject was changed on the media (O=system:masters added to
// apiserver-kubelet-client) is refused by the same profile check as first issuance; nothing is signed.
TEST_F(RenewalTest, SignDirRenewRefusesAChangedSubject) {
  MakeNode();
  const fs::path out = dir() / "renew-out";
  auto r = RenewalCsrs({"--out-dir", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const fs::path csr = out / "pki" / "apiserver-kubelet-client.csr";
  auto forged =
      RunProcess({"openssl", "req", "-new", "-key", (NodePki() / "apiserver-kubelet-client.key.pending").string(),
                  "-subj", "/O=system:masters/CN=kube-apiserver-kubelet-client", "-out", csr.string()});
  ASSERT_EQ(forged.exit_code, 0) << forged.err;
  r = Kubehsm({"certs", "sign-dir", "--renew", "--config", Config("cluster.yaml", "v1.36.0").string(), "--ca-dir",
               ca_dir().string(), "--cert-dir", (out / "pki").string(), "--kubeconfig-dir", out.string()});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("system:masters"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("apiserver-kubelet-client.csr"), std::string::npos) << r.err;
  for (const auto& e : fs::recursive_directory_iterator(out)) {
    EXPECT_NE(e.path().extension(), ".crt") << e.path() << " was written by a refused run";
  }
}

// A signed archive tampered with on the way back (apiserver.crt replaced by a CA-signed
// certificate for another key) is refused by install as a whole: nothing on the node changes and
// the pending keys stay.
TEST_F(RenewalTest, InstallRefusesACertificateThatDoesNotCarryThePendingKey) {
  MakeNode();
  const fs::path csrs = dir() / "node-renew.tar", signed_tar = dir() / "signed.tar";
  ASSERT_EQ(RenewalCsrs({"--out-tar", csrs.string()}).exit_code, 0);
  ASSERT_EQ(SignDirRenewTar(Config("cluster.yaml", "v1.36.0"), csrs, signed_tar).exit_code, 0);
  const fs::path x = dir() / "tampered";
  fs::create_directories(x);
  ASSERT_EQ(RunProcess({"tar", "-C", x.string(), "-xf", signed_tar.string()}).exit_code, 0);
  // Signed by the right CA, for the right name, but for the old key.
  WriteTestFile(x / "pki" / "apiserver.crt", ReadTestFile(NodePki() / "apiserver.crt"), 0644);
  const fs::path tampered = dir() / "tampered.tar";
  ASSERT_EQ(RunProcess({"tar", "-C", x.string(), "-cf", tampered.string(), "."}).exit_code, 0);
  const auto before = NodeMaterial();
  auto r = Install(tampered);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("pki/apiserver.crt: its public key does not match the pending key"), std::string::npos) << r.err;
  EXPECT_EQ(NodeMaterial(), before);
  EXPECT_TRUE(fs::exists(NodePki() / "apiserver.key.pending"));
  EXPECT_TRUE(fs::exists(NodeDir() / "admin.conf.key.pending"));
  // The untampered archive still installs.
  r = Install(signed_tar);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

// Upgrade 1.35 -> 1.36 on the air-gapped path: a 1.35 node's apiserver-kubelet-client carries
// O=kubeadm:cluster-admins. Renewed as it is, the 1.36 config refuses it and the 1.35 one accepts
// it; with `renewal-csrs --kubernetes-version v1.36.0` the request has the 1.36 subject, the 1.36
// config accepts it, the 1.32 config refuses it, and the installed certificate has no O.
TEST_F(RenewalTest, UpgradeRenewsWithTheNewVersionsProfile) {
  MakeNode("v1.35.0");
  auto subject = [&] {
    return RunProcess({"openssl", "x509", "-noout", "-subject", "-nameopt", "compat", "-in",
                       (NodePki() / "apiserver-kubelet-client.crt").string()})
        .out;
  };
  EXPECT_NE(subject().find("O=kubeadm:cluster-admins"), std::string::npos) << subject();
  const fs::path old_csrs = dir() / "old.tar", new_csrs = dir() / "new.tar";
  ASSERT_EQ(RenewalCsrs({"--out-tar", old_csrs.string(), "--reuse-keys"}).exit_code, 0);
  auto r = SignDirRenewTar(Config("cluster-1.36.yaml", "v1.36.0"), old_csrs, dir() / "x.tar");
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("kubeadm:cluster-admins"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir() / "x.tar"));
  r = SignDirRenewTar(Config("cluster-1.35.yaml", "v1.35.0"), old_csrs, dir() / "y.tar");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;

  ASSERT_EQ(RenewalCsrs({"--out-tar", new_csrs.string(), "--kubernetes-version", "v1.36.0"}).exit_code, 0);
  r = SignDirRenewTar(Config("cluster-1.32.yaml", "v1.32.0"), new_csrs, dir() / "z.tar");
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("apiserver-kubelet-client.csr"), std::string::npos) << r.err;
  const fs::path signed_tar = dir() / "signed.tar";
  r = SignDirRenewTar(Config("cluster-1.36.yaml", "v1.36.0"), new_csrs, signed_tar);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = Install(signed_tar);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(subject().find("O="), std::string::npos) << subject();
  EXPECT_NE(subject().find("CN=kube-apiserver-kubelet-client"), std::string::npos) << subject();
  auto verify = Kubehsm({"pki", "verify", "--cert-dir", NodePki().string(), "--kubeconfig-dir", NodeDir().string(),
                         "--config", Config("cluster-1.36.yaml", "v1.36.0").string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

// Bad input on the node: a directory that is not a kubeadm node, both or neither output given.
TEST_F(RenewalTest, RenewalCsrsAndInstallRefuseBadInputWithOneLine) {
  auto r = NodeKubehsm({"certs", "renewal-csrs", "--cert-dir", (dir() / "nope").string(), "--kubeconfig-dir",
                        (dir() / "nope").string(), "--out-dir", (dir() / "out").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir() / "out"));
  fs::create_directories(dir() / "empty");
  r = NodeKubehsm({"certs", "renewal-csrs", "--cert-dir", (dir() / "empty").string(), "--kubeconfig-dir",
                   (dir() / "empty").string(), "--out-dir", (dir() / "out").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no certificate to renew"), std::string::npos) << r.err;
  EXPECT_EQ(NodeKubehsm({"certs", "renewal-csrs"}).exit_code, 1);
  EXPECT_EQ(NodeKubehsm({"certs", "install-renewed"}).exit_code, 1);
  WriteTestFile(dir() / "junk.tar", "not a tar archive");
  r = NodeKubehsm({"certs", "install-renewed", "--in-tar", (dir() / "junk.tar").string(), "--cert-dir",
                   (dir() / "empty").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  // A signed archive may hold certificates only: a key or a kubeconfig member refuses it whole.
  for (const char* member : {"pki/apiserver.key", "admin.conf", "pki/apiserver.key.pending"}) {
    const fs::path x = dir() / "bad-signed";
    fs::remove_all(x);
    WriteTestFile(x / member, "-----BEGIN PRIVATE KEY-----\n");
    const fs::path tar = dir() / "bad-signed.tar";
    ASSERT_EQ(RunProcess({"tar", "-C", x.string(), "-cf", tar.string(), member}).exit_code, 0);
    r = NodeKubehsm({"certs", "install-renewed", "--in-tar", tar.string(), "--cert-dir", (dir() / "empty").string(),
                     "--kubeconfig-dir", (dir() / "empty").string()});
    EXPECT_EQ(r.exit_code, 2) << member;
    EXPECT_NE(r.err.find("is not part of a signed renewal layout"), std::string::npos) << member << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

// kubeadm's `certs check-expiration` says EXTERNALLY MANAGED "yes" for every CA whose certificate
// is there without its key (external-CA mode, a kubehsm node) and for the certificates under it;
// a CA key on disk makes that CA "no" again.
TEST_F(RenewalTest, CheckExpirationShowsExternallyManagedLikeKubeadm) {
  MakeNode();
  auto column = [&](const std::string& text, const std::string& row) {
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind(row + " ", 0) == 0) {
        const auto end = line.find_last_not_of(' ');
        return line.substr(line.find_last_of(' ', end) + 1, end - line.find_last_of(' ', end));
      }
    }
    return std::string("<no row " + row + ">");
  };
  auto table = [&] {
    auto r = NodeKubehsm(
        {"certs", "check-expiration", "--cert-dir", NodePki().string(), "--kubeconfig-dir", NodeDir().string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };
  std::string t = table();
  for (const char* row : {"admin.conf", "apiserver", "apiserver-etcd-client", "etcd-peer", "front-proxy-client",
                          "super-admin.conf", "ca", "etcd-ca", "front-proxy-ca"}) {
    EXPECT_EQ(column(t, row), "yes") << row << "\n" << t;
  }
  WriteTestFile(NodePki() / "front-proxy-ca.key", "a CA key on disk\n");
  t = table();
  EXPECT_EQ(column(t, "front-proxy-ca"), "no") << t;
  EXPECT_EQ(column(t, "front-proxy-client"), "no") << t;
  EXPECT_EQ(column(t, "ca"), "yes") << t;
  EXPECT_EQ(column(t, "apiserver"), "yes") << t;
}

// --kubernetes-version where there is no --config: sign-csr, renew and pki verify follow it in both
// directions (kubeadm-versions.md: apiserver-kubelet-client is O=kubeadm:cluster-admins +
// CN=kube-apiserver-kubelet-client up to 1.35, CN only from 1.36).
TEST_F(RenewalTest, SignCsrRenewAndVerifyFollowKubernetesVersionWithoutAConfig) {
  // sign-csr: a 1.36 request (no O) is accepted for 1.36 and refused for 1.32; a 1.32 one the other way round.
  for (const std::string o : {"", "/O=kubeadm:cluster-admins"}) {
    SCOPED_TRACE("O '" + o + "'");
    const fs::path key = dir() / "akc.key", csr = dir() / "akc.csr";
    ASSERT_EQ(RunProcess({"openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                          key.string()})
                  .exit_code,
              0);
    ASSERT_EQ(RunProcess({"openssl", "req", "-new", "-key", key.string(), "-subj",
                          o + "/CN=kube-apiserver-kubelet-client", "-out", csr.string()})
                  .exit_code,
              0);
    auto sign = [&](const std::string& version) {
      return Kubehsm({"certs", "sign-csr", "--csr", csr.string(), "--profile", "apiserver-kubelet-client", "--out",
                      (dir() / "akc.crt").string(), "--cert-dir", ca_dir().string(), "--kubernetes-version", version});
    };
    const std::string accepted = o.empty() ? "v1.36.0" : "v1.32.0", refused = o.empty() ? "v1.32.0" : "v1.36.0";
    auto r = sign(refused);
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_NE(r.err.find("CSR refused"), std::string::npos) << r.err;
    r = sign(accepted);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  EXPECT_EQ(Kubehsm({"certs", "sign-csr", "--csr", "x", "--profile", "apiserver-kubelet-client", "--out", "y",
                     "--kubernetes-version", "v1.31.0"})
                .exit_code,
            1);

  // A 1.36 node: pki verify accepts it as 1.36 and refuses it as 1.32.
  MakeNode("v1.36.0");
  auto verify = [&](const std::string& version) {
    return Kubehsm({"pki", "verify", "--cert-dir", NodePki().string(), "--kubeconfig-dir", NodeDir().string(),
                    "--kubernetes-version", version});
  };
  auto line_of = [](const std::string& out, const std::string& name) {
    const size_t at = out.find(" " + name + " ");
    if (at == std::string::npos) return std::string();
    const size_t start = out.rfind('\n', at);
    return out.substr(start == std::string::npos ? 0 : start + 1, out.find('\n', at) - (start + 1));
  };
  auto v = verify("v1.36.0");
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  v = verify("v1.32.0");
  EXPECT_EQ(v.exit_code, 2) << v.out;
  EXPECT_NE(line_of(v.out, "apiserver-kubelet-client").find("FAIL"), std::string::npos) << v.out;

  // renew --kubernetes-version re-issues with that version's subject, and verify agrees.
  auto renew = [&](const std::string& version) {
    return Kubehsm({"certs", "renew", "apiserver-kubelet-client", "--cert-dir", NodePki().string(), "--kubeconfig-dir",
                    NodeDir().string(), "--kubernetes-version", version});
  };
  auto subject = [&] {
    return RunProcess({"openssl", "x509", "-noout", "-subject", "-nameopt", "compat", "-in",
                       (NodePki() / "apiserver-kubelet-client.crt").string()})
        .out;
  };
  auto r = renew("v1.32.0");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(subject().find("O=kubeadm:cluster-admins"), std::string::npos) << subject();
  v = verify("v1.32.0");
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  v = verify("v1.36.0");
  EXPECT_EQ(v.exit_code, 2) << v.out;
  EXPECT_NE(line_of(v.out, "apiserver-kubelet-client").find("FAIL"), std::string::npos) << v.out;
  r = renew("v1.36.0");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(subject().find("O="), std::string::npos) << subject();
  v = verify("v1.36.0");
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

// sign-dir --renew over the generate-csr layout itself (the node kept its CSRs): a plain re-run keeps
// all 12 valid certificates; --renew signs all 12 again, kubeconfigs included, in directory and tar
// mode.
TEST_F(RenewalTest, SignDirRenewResignsAGenerateCsrLayoutKubeconfigsIncluded) {
  const fs::path node = dir() / "gen";
  auto g = RunProcess({"bash", (kubehsm::testing::SourceDir() / "tests/pki/generate_csr_fixture.sh").string(),
                       node.string(), "cp1", "192.0.2.1", "ec", "32"});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  const fs::path config = Config("gen.yaml", "v1.32.0");
  auto sign = [&](bool renew) {
    std::vector<std::string> args = {"certs",
                                     "sign-dir",
                                     "--config",
                                     config.string(),
                                     "--cert-dir",
                                     (node / "pki").string(),
                                     "--kubeconfig-dir",
                                     node.string(),
                                     "--ca-dir",
                                     ca_dir().string()};
    if (renew) args.push_back("--renew");
    return Kubehsm(args);
  };
  auto certs = [&] {
    std::map<std::string, std::string> m;
    for (const char* leaf : kLeaves) m[leaf] = ReadTestFile(node / "pki" / (std::string(leaf) + ".crt"));
    for (const char* conf : kConfs) {
      auto creds = ReadKubeconfig(ReadTestFile(node / conf));
      EXPECT_TRUE(creds.ok()) << conf;
      if (creds.ok()) m[conf] = creds->client_cert_pem;
    }
    return m;
  };
  ASSERT_EQ(sign(false).exit_code, 0);
  const auto first = certs();
  auto r = sign(false);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("0 certificate(s) signed, 12 kept"), std::string::npos) << r.out;
  EXPECT_EQ(certs(), first);
  r = sign(true);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("12 certificate(s) signed, 0 kept"), std::string::npos) << r.out;
  const auto second = certs();
  for (const auto& [name, pem] : second) EXPECT_NE(pem, first.at(name)) << name << " was not re-signed";

  // Tar mode: the node's directory packed as generate-csr left it plus the results; all 12 again.
  const fs::path in = dir() / "gen.tar", out = dir() / "gen-signed.tar";
  std::vector<std::string> tar = {"tar", "-C", node.string(), "-cf", in.string()};
  for (const char* leaf : kLeaves) tar.push_back("pki/" + std::string(leaf) + ".csr");
  for (const char* conf : kConfs) {
    tar.push_back(conf);
    tar.push_back(std::string(conf) + ".csr");
  }
  ASSERT_EQ(RunProcess(tar).exit_code, 0);
  r = Kubehsm({"certs", "sign-dir", "--renew", "--config", config.string(), "--ca-dir", ca_dir().string(), "--in-tar",
               in.string(), "--out-tar", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("12 certificate(s) signed, 0 kept"), std::string::npos) << r.out;
  auto list = RunProcess({"tar", "-tf", out.string()});
  for (const char* conf : kConfs) EXPECT_NE(list.out.find(std::string(conf) + "\n"), std::string::npos) << list.out;
}

}  // namespace
}  // namespace kubehsm::signer::pki
