// Security regressions of issue #14, end to end: the real kubehsm binary on a fresh SoftHSM token,
// real openssl, and files owned by another uid (65534) where the attack needs one.
//  - item 1: `certs renew` re-issues only certificates this CA issued, from their profile;
//  - item 4: service-account key changes and minted tokens are audited; imported keys are
//    confirmed, marked and expire;
//  - item 7: no certificate without its audit record; state directory checks; `audit verify`
//    cross-checks the ledger and the head;
//  - item 14: an untrusted config file or PKCS#11 module is refused.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/test_env.h"

namespace kubehsm::testing {
namespace {

namespace fs = std::filesystem;

class SecurityCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    token_ = std::make_unique<SoftHsmToken>("sec-test");
    token_->WriteKubehsmConfig();
  }
  ProcessResult Kubehsm(std::vector<std::string> args) {
    args.insert(args.begin(), KubehsmBinary().string());
    return RunProcess(args, token_->ChildEnv());
  }
  static void ExpectOneErrorLine(const ProcessResult& r, const std::string& part) {
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_EQ(r.err.rfind("kubehsm:", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
  }
  fs::path Node() const { return dir_.path() / "node"; }
  fs::path Pki() const { return Node() / "pki"; }
  fs::path AuditLog() const { return token_->dir() / "audit.log"; }
  void InitOk() {
    // Pinned to Kubernetes 1.32 (apiserver-kubelet-client with O=kubeadm:cluster-admins), which the
    // renew tests below check the subject of.
    auto r = Kubehsm({"init", "--cert-dir", Pki().string(), "--kubeconfig-dir", Node().string(), "--node-name", "cp1",
                      "--advertise-address", "192.0.2.1", "--encryption-algorithm", "ECDSA-P256",
                      "--kubernetes-version", "v1.32.0"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  ProcessResult Renew(const std::string& name) {
    return Kubehsm({"certs", "renew", name, "--cert-dir", Pki().string(), "--kubeconfig-dir", Node().string()});
  }
  static ProcessResult Sh(const std::string& script) { return RunProcess({"/bin/sh", "-c", script}); }
  int64_t LedgerCount() {
    auto l = Kubehsm({"ledger", "list", "-o", "json"});
    EXPECT_EQ(l.exit_code, 0) << l.err;
    return static_cast<int64_t>(nlohmann::json::parse(l.out).size());
  }
  // The audit records with `event`.
  std::vector<nlohmann::json> AuditRecords(const std::string& event) {
    std::vector<nlohmann::json> out;
    std::istringstream in(ReadTestFile(AuditLog()));
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      if (j["event"] == event) out.push_back(j);
    }
    return out;
  }
  std::string ActiveKid() {
    for (const auto& k : nlohmann::json::parse(Kubehsm({"sa", "list", "-o", "json"}).out)) {
      if (k["state"] == "active") return k["kid"];
    }
    return "";
  }

  TempDir dir_;
  std::unique_ptr<SoftHsmToken> token_;
};

// --- item 1: certs renew ------------------------------------------------------------------------

// The attack of the issue: a self-signed system:masters certificate with foreign SANs, EKUs and
// CA:TRUE planted as apiserver-kubelet-client.crt. Renew refuses it, names why, changes nothing.
TEST_F(SecurityCliTest, RenewRefusesPlantedAttackerCertificate) {
  InitOk();
  auto gen = Sh("cd " + Pki().string() +
                " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30"
                " -keyout apiserver-kubelet-client.key -out apiserver-kubelet-client.crt"
                " -subj /O=system:masters/CN=attacker -addext subjectAltName=DNS:*.example.com,IP:8.8.8.8"
                " -addext extendedKeyUsage=serverAuth,clientAuth -addext basicConstraints=critical,CA:TRUE 2>&1");
  ASSERT_EQ(gen.exit_code, 0) << gen.out;
  const std::string planted = ReadTestFile(Pki() / "apiserver-kubelet-client.crt");
  const int64_t before = LedgerCount();
  auto r = Renew("apiserver-kubelet-client");
  ExpectOneErrorLine(r, "refusing to renew");
  EXPECT_NE(r.err.find("not issued by the ca CA"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("CN \"attacker\", profile wants \"kube-apiserver-kubelet-client\""), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("O [system:masters], profile wants [kubeadm:cluster-admins]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("SANs not in the profile: DNS:*.example.com, IP:8.8.8.8"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("CA:TRUE"), std::string::npos) << r.err;
  EXPECT_EQ(ReadTestFile(Pki() / "apiserver-kubelet-client.crt"), planted);
  EXPECT_EQ(LedgerCount(), before);
  // `all` refuses the whole run: nothing else is renewed either.
  const std::string apiserver = ReadTestFile(Pki() / "apiserver.crt");
  ExpectOneErrorLine(Renew("all"), "apiserver-kubelet-client");
  EXPECT_EQ(ReadTestFile(Pki() / "apiserver.crt"), apiserver);
}

// A certificate with exactly the profile's subject and usages, signed by another CA.
TEST_F(SecurityCliTest, RenewRefusesCertificateSignedByAnotherCa) {
  InitOk();
  auto gen = Sh("cd " + dir_.path().string() +
                " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -keyout other.key"
                " -out other.crt -subj /CN=other-ca 2>&1"
                " && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key -out leaf.csr"
                " -subj /O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client 2>&1"
                " && printf 'extendedKeyUsage=clientAuth\\nbasicConstraints=critical,CA:FALSE\\n' > ext"
                " && openssl x509 -req -in leaf.csr -CA other.crt -CAkey other.key -days 30 -extfile ext"
                " -out " + (Pki() / "apiserver-kubelet-client.crt").string() + " 2>&1");
  ASSERT_EQ(gen.exit_code, 0) << gen.out;
  auto r = Renew("apiserver-kubelet-client");
  ExpectOneErrorLine(r, "not issued by the ca CA");
  EXPECT_EQ(r.err.find("profile wants"), std::string::npos) << "the subject fits the profile: " << r.err;
}

// A genuine certificate renews: signed by ca, new serial, and the profile's usages.
TEST_F(SecurityCliTest, RenewReissuesGenuineCertificateWithProfileUsages) {
  InitOk();
  auto old_serial = Sh("openssl x509 -noout -serial -in " + (Pki() / "apiserver-kubelet-client.crt").string());
  auto r = Renew("apiserver-kubelet-client");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string crt = (Pki() / "apiserver-kubelet-client.crt").string();
  auto verify = Sh("openssl verify -CAfile " + (Pki() / "ca.crt").string() + " " + crt);
  EXPECT_EQ(verify.exit_code, 0) << verify.out;
  auto text = Sh("openssl x509 -noout -text -nameopt oneline -serial -in " + crt);  // explicit format: 3.0 and 3.5 differ
  EXPECT_NE(text.out.find("Subject: O = kubeadm:cluster-admins, CN = kube-apiserver-kubelet-client"), std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("TLS Web Client Authentication"), std::string::npos);
  EXPECT_EQ(text.out.find("TLS Web Server Authentication"), std::string::npos);
  EXPECT_NE(text.out.find("CA:FALSE"), std::string::npos);
  EXPECT_EQ(text.out.find(old_serial.out), std::string::npos) << "same serial";
  // Renewed again: the renewed certificate is itself in the ledger.
  EXPECT_EQ(Renew("apiserver-kubelet-client").exit_code, 0);
  EXPECT_EQ(Kubehsm({"audit", "verify"}).exit_code, 0);
}

// A genuine certificate of another profile (admin.conf's client certificate, signed by ca and in
// the ledger) copied over apiserver-kubelet-client.crt is refused by the ledger's profile.
TEST_F(SecurityCliTest, RenewRefusesGenuineCertificateOfAnotherProfile) {
  InitOk();
  auto copy = Sh("grep client-certificate-data " + (Node() / "admin.conf").string() +
                 " | awk '{print $2}' | base64 -d > " + (Pki() / "apiserver-kubelet-client.crt").string());
  ASSERT_EQ(copy.exit_code, 0);
  auto r = Renew("apiserver-kubelet-client");
  ExpectOneErrorLine(r, "was issued as 'admin.conf', not 'apiserver-kubelet-client'");
}

TEST_F(SecurityCliTest, RenewAllWithMissingOrWrongCertDirFails) {
  auto missing = Kubehsm({"certs", "renew", "all", "--cert-dir", (dir_.path() / "nope").string(), "--kubeconfig-dir",
                          dir_.path().string()});
  ExpectOneErrorLine(missing, "does not exist");
  EXPECT_EQ(missing.out.find("MISSING"), std::string::npos) << missing.out;
  fs::create_directories(dir_.path() / "empty");
  auto empty = Kubehsm({"certs", "renew", "all", "--cert-dir", (dir_.path() / "empty").string(), "--kubeconfig-dir",
                        dir_.path().string()});
  ExpectOneErrorLine(empty, "holds no ca.crt");
}

// --- item 4: service-account keys ---------------------------------------------------------------

TEST_F(SecurityCliTest, ImportPublicNeedsConfirmationIsMarkedAndExpires) {
  auto gen = Sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 | openssl pkey -pubout -out " +
                (dir_.path() / "outside.pub").string());
  ASSERT_EQ(gen.exit_code, 0);
  const std::string pub = (dir_.path() / "outside.pub").string();
  ASSERT_EQ(Kubehsm({"init", "phase", "sa", "--cert-dir", Pki().string()}).exit_code, 0);
  auto bare = Kubehsm({"sa", "import-public", pub});
  EXPECT_EQ(bare.exit_code, 1) << bare.err;
  EXPECT_NE(bare.err.find("--confirm-key-outside-token"), std::string::npos) << bare.err;
  auto no_expiry = Kubehsm({"sa", "import-public", pub, "--confirm-key-outside-token"});
  EXPECT_EQ(no_expiry.exit_code, 1) << no_expiry.err;
  EXPECT_NE(no_expiry.err.find("--expires-in"), std::string::npos) << no_expiry.err;
  EXPECT_EQ(nlohmann::json::parse(Kubehsm({"sa", "list", "-o", "json"}).out).size(), 1u) << "imported anyway";

  auto imp = Kubehsm({"sa", "import-public", pub, "--confirm-key-outside-token", "--expires-in", "4s"});
  ASSERT_EQ(imp.exit_code, 0) << imp.err;
  std::string kid;
  for (const auto& k : nlohmann::json::parse(Kubehsm({"sa", "list", "-o", "json"}).out)) {
    if (k["source"] == "imported") {
      kid = k["kid"];
      EXPECT_TRUE(k.contains("until"));
      EXPECT_EQ(k["published"], true);
    }
  }
  ASSERT_FALSE(kid.empty());
  EXPECT_NE(Kubehsm({"sa", "list"}).out.find("imported"), std::string::npos);
  auto jwks = Kubehsm({"sa", "jwks"});
  ASSERT_EQ(jwks.exit_code, 0) << jwks.err;
  EXPECT_NE(jwks.out.find(kid), std::string::npos);
  EXPECT_NE(jwks.err.find(kid + " is an imported public key"), std::string::npos) << jwks.err;
  std::this_thread::sleep_for(std::chrono::seconds(5));
  auto later = Kubehsm({"sa", "jwks"});
  ASSERT_EQ(later.exit_code, 0) << later.err;
  EXPECT_EQ(later.out.find(kid), std::string::npos) << "published after its expiry: " << later.out;
  EXPECT_NE(later.err.find("not published"), std::string::npos) << later.err;
  auto records = AuditRecords("sa-key-import-public");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0]["fields"]["kid"], kid);
  EXPECT_EQ(records[0]["fields"]["source"], "imported-public-key");
  EXPECT_EQ(records[0]["uid"], static_cast<int64_t>(::geteuid()));
}

TEST_F(SecurityCliTest, EveryServiceAccountKeyChangeAndTokenIsAudited) {
  ASSERT_EQ(Kubehsm({"init", "phase", "sa", "--cert-dir", Pki().string()}).exit_code, 0);
  const std::string first = ActiveKid();
  ASSERT_FALSE(first.empty());
  auto gen = AuditRecords("sa-key-generate");
  ASSERT_EQ(gen.size(), 1u);
  EXPECT_EQ(gen[0]["fields"]["kid"], first) << gen[0].dump();
  EXPECT_EQ(ReadTestFile(AuditLog()).find("kubehsm-sa:new:"), std::string::npos) << "temporary label audited";

  ASSERT_EQ(Kubehsm({"sa", "rotate", "--type", "ecdsa-p256"}).exit_code, 0);
  ASSERT_EQ(Kubehsm({"sa", "activate", "--force"}).exit_code, 0);
  const std::string second = ActiveKid();
  ASSERT_EQ(Kubehsm({"sa", "rotate", "--type", "ecdsa-p256"}).exit_code, 0);
  std::string third;
  for (const auto& k : nlohmann::json::parse(Kubehsm({"sa", "list", "-o", "json"}).out)) {
    if (k["state"] == "next") third = k["kid"];
  }
  ASSERT_EQ(Kubehsm({"sa", "retire", "--key=" + third}).exit_code, 0);
  ASSERT_EQ(Kubehsm({"sa", "remove", "--force", "--key=" + first}).exit_code, 0);
  auto sign = Kubehsm({"sa", "sign", "--issuer", "https://k", "--namespace", "kube-system", "--service-account",
                       "x", "--uid", "00000000-0000-0000-0000-000000000001"});
  ASSERT_EQ(sign.exit_code, 0) << sign.err;
  const std::map<std::string, std::string> want = {{"sa-key-rotate", third},   {"sa-key-activate", second},
                                                   {"sa-key-retire", third},   {"sa-key-remove", first},
                                                   {"sa-token-sign", second}};
  for (const auto& [event, kid] : want) {
    auto recs = AuditRecords(event);
    ASSERT_FALSE(recs.empty()) << event;
    const auto& rec = recs.back();
    EXPECT_EQ(rec["fields"]["kid"], kid) << event;
    EXPECT_EQ(rec["fields"]["source"], "generated-in-token") << event;
    EXPECT_EQ(rec["uid"], static_cast<int64_t>(::geteuid())) << event;
    EXPECT_TRUE(rec.contains("time")) << event;
  }
  EXPECT_EQ(AuditRecords("sa-token-sign").back()["fields"]["sub"], "system:serviceaccount:kube-system:x");
  // No token without its audit record.
  WriteTestFile(dir_.path() / "junk", "{\"seq\":");
  ASSERT_EQ(Sh("cat " + (dir_.path() / "junk").string() + " >> " + AuditLog().string()).exit_code, 0);
  auto unaudited = Kubehsm({"sa", "sign", "--issuer", "https://k", "--namespace", "kube-system", "--service-account",
                            "x", "--uid", "00000000-0000-0000-0000-000000000001"});
  ExpectOneErrorLine(unaudited, "partial record");
  EXPECT_EQ(unaudited.out, "");
}

// --- item 7: audit trail and state directory ------------------------------------------------------

TEST_F(SecurityCliTest, PartialAuditLineMakesSignCsrFailWithNothingIssued) {
  ASSERT_EQ(Kubehsm({"init", "phase", "ca", "--cert-dir", Pki().string(), "--encryption-algorithm", "ECDSA-P256"})
                .exit_code,
            0);
  auto csr = Sh("cd " + dir_.path().string() +
                " && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout w1.key"
                " -subj /O=system:nodes/CN=system:node:w1 -out w1.csr 2>&1");
  ASSERT_EQ(csr.exit_code, 0) << csr.out;
  const int64_t before = LedgerCount();
  ASSERT_EQ(Sh("printf '{\"seq\":99,\"ti' >> " + AuditLog().string()).exit_code, 0);
  auto r = Kubehsm({"certs", "sign-csr", "--csr", (dir_.path() / "w1.csr").string(), "--profile", "kubelet-client",
                    "--out", (dir_.path() / "w1.crt").string(), "--cert-dir", Pki().string()});
  ExpectOneErrorLine(r, "partial record");
  EXPECT_FALSE(fs::exists(dir_.path() / "w1.crt"));
  EXPECT_EQ(LedgerCount(), before) << "a certificate is in the ledger without its audit record";
}

TEST_F(SecurityCliTest, AuditVerifyReportsLedgerSerialWithoutRecordAndRecordsBeyondHead) {
  ASSERT_EQ(Kubehsm({"init", "phase", "ca", "--cert-dir", Pki().string(), "--encryption-algorithm", "ECDSA-P256"})
                .exit_code,
            0);
  ASSERT_EQ(Kubehsm({"audit", "verify"}).exit_code, 0);
  // Records appended after the head: keep the old head over a longer log.
  // One (what a writer killed between its two writes leaves) is reported; two cannot come from a
  // crash and fail.
  const std::string head = ReadTestFile(token_->dir() / "audit.log.head");
  ASSERT_EQ(Kubehsm({"sa", "rotate"}).exit_code, 0);
  const std::string head_after_one = ReadTestFile(token_->dir() / "audit.log.head");
  WriteTestFile(token_->dir() / "audit.log.head", head);
  auto one = Kubehsm({"audit", "verify"});
  EXPECT_EQ(one.exit_code, 0) << one.err;
  EXPECT_NE(one.out.find("beyond the head file's record"), std::string::npos) << one.out;
  WriteTestFile(token_->dir() / "audit.log.head", head_after_one);
  ASSERT_EQ(Kubehsm({"sa", "activate", "--force"}).exit_code, 0);
  WriteTestFile(token_->dir() / "audit.log.head", head);
  ExpectOneErrorLine(Kubehsm({"audit", "verify"}), "2 record(s) beyond the head");
  // Ledger rows without audit records: the log and head removed together pass the chain check.
  fs::remove(AuditLog());
  fs::remove(token_->dir() / "audit.log.head");
  ExpectOneErrorLine(Kubehsm({"audit", "verify"}), "3 issued certificate(s) without an audit record");
}

TEST_F(SecurityCliTest, UntrustedStateDirectoryOrSymlinkedLedgerIsRefused) {
  const fs::path state = dir_.path() / "state";
  fs::create_directories(state);
  auto list = [&] { return Kubehsm({"--state-dir", state.string(), "ledger", "list"}); };
  ASSERT_EQ(list().exit_code, 0) << list().err;
  ASSERT_EQ(::chmod(state.c_str(), 0777), 0);
  ExpectOneErrorLine(list(), "world-writable");
  ASSERT_EQ(::chmod(state.c_str(), 0700), 0);
  ASSERT_EQ(::chown(state.c_str(), 65534, 65534), 0);
  ExpectOneErrorLine(list(), "owned by another user (uid 65534)");
  ASSERT_EQ(::chown(state.c_str(), 0, 0), 0);
  fs::remove(state / "ledger.db");
  WriteTestFile(dir_.path() / "decoy.db", "");
  fs::create_symlink(dir_.path() / "decoy.db", state / "ledger.db");
  ExpectOneErrorLine(list(), "symlink");
  EXPECT_EQ(ReadTestFile(dir_.path() / "decoy.db"), "");
}

// --- item 14: config file and module -------------------------------------------------------------

TEST_F(SecurityCliTest, WorldWritableConfigOwnedByAnotherUserIsRefused) {
  const fs::path conf = token_->dir() / "kubehsm.conf";
  ASSERT_EQ(::chown(conf.c_str(), 65534, 65534), 0);
  ASSERT_EQ(::chmod(conf.c_str(), 0666), 0);
  auto r = Kubehsm({"keys", "list"});
  ExpectOneErrorLine(r, "refusing config file");
  EXPECT_NE(r.err.find("uid 65534"), std::string::npos) << r.err;
  ASSERT_EQ(::chown(conf.c_str(), 0, 0), 0);
  ExpectOneErrorLine(Kubehsm({"keys", "list"}), "world-writable");
  ASSERT_EQ(::chmod(conf.c_str(), 0600), 0);
  EXPECT_EQ(Kubehsm({"keys", "list"}).exit_code, 0);
}

TEST_F(SecurityCliTest, WorldWritableModuleIsRefused) {
  const fs::path copy = dir_.path() / "lib" / "libsofthsm2.so";
  fs::create_directories(copy.parent_path());
  fs::copy_file(token_->module_path(), copy);
  ASSERT_EQ(::chmod(copy.c_str(), 0755), 0);
  EXPECT_EQ(Kubehsm({"--module", copy.string(), "keys", "list"}).exit_code, 0);
  ASSERT_EQ(::chmod(copy.c_str(), 0666), 0);
  auto r = Kubehsm({"--module", copy.string(), "keys", "list"});
  ExpectOneErrorLine(r, "refusing to load PKCS#11 module");
  EXPECT_NE(r.err.find("world-writable"), std::string::npos) << r.err;
  // Through a symlink in a trusted directory, to a module in a world-writable one.
  ASSERT_EQ(::chmod(copy.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(copy.parent_path().c_str(), 0777), 0);
  fs::create_directories(dir_.path() / "safe");
  fs::create_symlink(copy, dir_.path() / "safe" / "mod.so");
  ExpectOneErrorLine(Kubehsm({"--module", (dir_.path() / "safe" / "mod.so").string(), "keys", "list"}),
                     "world-writable");
}

}  // namespace
}  // namespace kubehsm::testing
