// Several signing boxes, backup and restore, end to end: the real binary on fresh SoftHSM tokens.
// `ledger export` / `ledger import` merge one box's ledger into another's (identical rows are
// idempotent, a serial both hold with other content is refused, a malformed or truncated file or a
// row that does not match its certificate changes nothing, the import is audited and `audit verify`
// passes afterwards); a box backed up as README's "Backup and recovery" says (SoftHSM token
// directory, `sqlite3 .backup` of the ledger, audit.log + head, pki/*.crt, config, PIN file),
// destroyed and restored into another directory keeps issuing with unique serials.
#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/pki/csr_test_util.h"
#include "tests/support/test_env.h"

namespace kubehsm::signer::pki {
namespace {

namespace fs = std::filesystem;
using kubehsm::testing::ProcessResult;
using kubehsm::testing::ReadTestFile;
using kubehsm::testing::RunProcess;
using kubehsm::testing::TempDir;
using kubehsm::testing::WriteTestFile;
using testutil::CsrRequest;
using testutil::MakeCsr;

ProcessResult RunKubehsm(std::vector<std::string> args, const std::map<std::string, std::string>& env) {
  args.insert(args.begin(), kubehsm::testing::KubehsmBinary().string());
  return RunProcess(args, env);
}

CsrRequest Node(const std::string& name) {
  CsrRequest r;
  r.cn = "system:node:" + name;
  r.orgs = {"system:nodes"};
  return r;
}

// One signing box: a token (SoftHSM, its own directory), the CAs made by `init phase ca` and
// the state directory (the token directory, as create-token sets it up).
class Box {
 public:
  explicit Box(const std::string& label) : token_(label) {
    token_.WriteKubehsmConfig();
    env_ = token_.ChildEnv();
    auto r = RunKubehsm({"init", "phase", "ca", "--cert-dir", ca_dir().string(), "--node-name", "signer",
                         "--advertise-address", "127.0.0.1", "--encryption-algorithm", "ECDSA-P256"},
                        env_);
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  ProcessResult Kubehsm(const std::vector<std::string>& args) const { return RunKubehsm(args, env_); }
  // Signs a kubelet-client CSR for `node` and returns its serial as the ledger prints it.
  std::string Sign(const std::string& node) const {
    const fs::path csr = work_.path() / (node + ".csr");
    const fs::path out = work_.path() / (node + ".crt");
    WriteTestFile(csr, MakeCsr(Node(node)));
    auto r = Kubehsm({"certs", "sign-csr", "--csr", csr.string(), "--profile", "kubelet-client", "--out", out.string(),
                      "--cert-dir", ca_dir().string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto serial = RunProcess({"openssl", "x509", "-in", out.string(), "-noout", "-serial"});
    EXPECT_EQ(serial.exit_code, 0);
    std::string s = serial.out.substr(serial.out.find('=') + 1);
    s.erase(s.find_last_not_of('\n') + 1);
    return s;
  }
  nlohmann::json Export() const {
    const fs::path out = work_.path() / "export.json";
    fs::remove(out);
    auto r = Kubehsm({"ledger", "export", "--out", out.string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(ReadTestFile(out));
  }
  std::vector<std::string> Serials() const {
    auto r = Kubehsm({"ledger", "list", "-o", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> out;
    for (const auto& row : nlohmann::json::parse(r.out)) out.push_back(row["serial"].get<std::string>());
    return out;
  }
  void ExpectAuditVerifies() const {
    auto r = Kubehsm({"audit", "verify"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  fs::path ca_dir() const { return work_.path() / "pki"; }
  fs::path state_dir() const { return token_.dir(); }
  const kubehsm::testing::SoftHsmToken& token() const { return token_; }
  fs::path work() const { return work_.path(); }

 private:
  kubehsm::testing::SoftHsmToken token_;
  TempDir work_;
  std::map<std::string, std::string> env_;
};

fs::path WriteJson(const fs::path& path, const nlohmann::json& j) {
  WriteTestFile(path, j.dump(2));
  return path;
}

void ExpectOneLineError(const ProcessResult& r, const std::string& part) {
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
}

TEST(LedgerMergeTest, ExportCarriesEveryColumnAndTheBoxId) {
  Box a("box-a");
  const std::string serial = a.Sign("worker-1");
  const nlohmann::json doc = a.Export();
  EXPECT_EQ(doc["kind"], "KubehsmLedgerExport");
  EXPECT_EQ(doc["version"], 1);
  const std::string box = doc["boxId"].get<std::string>();
  EXPECT_EQ(box.size(), 32u) << box;
  EXPECT_EQ(doc["count"], doc["certificates"].size());
  ASSERT_EQ(doc["certificates"].size(), 4u) << "three CAs and the kubelet certificate";
  const auto& row = doc["certificates"][3];
  for (const char* key : {"serial", "issuer", "subject", "sans", "profile", "operation", "notBefore", "notAfter",
                          "sha256", "requester", "host", "issuedAt", "boxId", "certificate"}) {
    EXPECT_TRUE(row.contains(key)) << key;
  }
  EXPECT_EQ(row["serial"], serial) << "openssl's form";
  EXPECT_EQ(row["boxId"], box);
  // A second box has another id.
  Box b("box-b");
  EXPECT_NE(b.Export()["boxId"], box);
}

TEST(LedgerMergeTest, ImportMergesAnotherBoxIdempotentlyAndAudits) {
  Box a("box-a");
  Box b("box-b");
  a.Sign("worker-1");
  a.Sign("worker-2");
  b.Sign("worker-3");
  const nlohmann::json export_a = a.Export();
  const fs::path file = WriteJson(b.work() / "a.json", export_a);
  auto r = b.Kubehsm({"ledger", "import", file.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string box_a = export_a["boxId"].get<std::string>();
  EXPECT_NE(r.out.find("imported 5 certificate(s) from box " + box_a + " (0 already present and identical)"),
            std::string::npos)
      << r.out;
  std::vector<std::string> merged = b.Serials();
  EXPECT_EQ(merged.size(), 9u);
  EXPECT_EQ(std::set<std::string>(merged.begin(), merged.end()).size(), merged.size()) << "serials unique";
  for (const auto& row : export_a["certificates"]) {
    auto show = b.Kubehsm({"ledger", "show", row["serial"].get<std::string>()});
    ASSERT_EQ(show.exit_code, 0) << show.err;
    EXPECT_EQ(nlohmann::json::parse(show.out), row) << "every column survives the merge";
  }
  // The import is audited (who, from which box, counts, the serials) and the cross-check passes.
  const std::string audit = ReadTestFile(b.state_dir() / "audit.log");
  EXPECT_NE(audit.find("\"event\":\"ledger-import\""), std::string::npos) << audit;
  EXPECT_NE(audit.find("\"sourceBox\":\"" + box_a + "\""), std::string::npos) << audit;
  EXPECT_NE(audit.find("\"added\":\"5\""), std::string::npos) << audit;
  EXPECT_NE(audit.find("\"requester\":"), std::string::npos) << audit;
  b.ExpectAuditVerifies();
  a.ExpectAuditVerifies();
  // The same file again: identical rows are skipped.
  r = b.Kubehsm({"ledger", "import", file.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("imported 0 certificate(s) from box " + box_a + " (5 already present and identical)"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(b.Serials(), merged);
  // And the other way round: A takes B's merged ledger (A's own rows come back identical).
  r = a.Kubehsm({"ledger", "import", WriteJson(a.work() / "b.json", b.Export()).string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("imported 4 certificate(s)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(5 already present and identical)"), std::string::npos) << r.out;
  std::vector<std::string> a_serials = a.Serials();
  std::sort(a_serials.begin(), a_serials.end());
  std::sort(merged.begin(), merged.end());
  EXPECT_EQ(a_serials, merged);
  a.ExpectAuditVerifies();
}

TEST(LedgerMergeTest, ImportRefusesASerialCollisionAndImportsNothing) {
  Box a("box-a");
  Box b("box-b");
  a.Sign("worker-1");
  ASSERT_EQ(b.Kubehsm({"ledger", "import", WriteJson(b.work() / "a1.json", a.Export()).string()}).exit_code, 0);
  a.Sign("worker-2");  // new on A, not yet on B
  nlohmann::json doc = a.Export();
  // A row B already holds, with other content under the same serial.
  doc["certificates"][3]["requester"] = "mallory";
  const std::string collided = doc["certificates"][3]["serial"].get<std::string>();
  const std::vector<std::string> before = b.Serials();
  const std::string audit_before = ReadTestFile(b.state_dir() / "audit.log");
  auto r = b.Kubehsm({"ledger", "import", WriteJson(b.work() / "a2.json", doc).string()});
  ExpectOneLineError(r, "serial collision: serial " + collided);
  EXPECT_NE(r.err.find("nothing imported"), std::string::npos) << r.err;
  EXPECT_EQ(b.Serials(), before) << "the new worker-2 row was not imported either (one transaction)";
  const std::string audit = ReadTestFile(b.state_dir() / "audit.log");
  EXPECT_EQ(audit.substr(0, audit_before.size()), audit_before);
  EXPECT_NE(audit.find("\"event\":\"ledger-import-refused\"", audit_before.size()), std::string::npos) << audit;
  EXPECT_EQ(audit.find("\"event\":\"ledger-import\"", audit_before.size()), std::string::npos) << audit;
  b.ExpectAuditVerifies();
}

TEST(LedgerMergeTest, ImportRefusesMalformedTruncatedAndMismatchedFiles) {
  Box a("box-a");
  Box b("box-b");
  a.Sign("worker-1");
  const nlohmann::json good = a.Export();
  const std::string good_text = good.dump(2);
  const std::vector<std::string> before = b.Serials();
  const auto refused = [&](const std::string& name, const std::string& text, const std::string& why) {
    const fs::path file = b.work() / name;
    WriteTestFile(file, text);
    auto r = b.Kubehsm({"ledger", "import", file.string()});
    ExpectOneLineError(r, why);
    EXPECT_NE(r.err.find("nothing imported"), std::string::npos) << name << ": " << r.err;
    EXPECT_EQ(b.Serials(), before) << name;
  };
  refused("cut.json", good_text.substr(0, good_text.size() / 2), "not JSON (truncated");
  refused("array.json", good["certificates"].dump(), "not a 'kubehsm ledger export -o json' file");
  nlohmann::json doc = good;
  doc["certificates"].erase(doc["certificates"].size() - 1);
  refused("short.json", doc.dump(), "'count' says 4 certificate(s), the file holds 3 (truncated or edited)");
  doc = good;
  doc["certificates"][3]["subject"] = "O=system:masters,CN=worker-1";
  refused("subject.json", doc.dump(), "the recorded subject 'O=system:masters,CN=worker-1' is not the certificate's");
  doc = good;
  doc["certificates"][3]["notAfter"] = "2099-01-01T00:00:00Z";
  refused("dates.json", doc.dump(), "the recorded notAfter '2099-01-01T00:00:00Z' is not the certificate's");
  doc = good;
  doc["certificates"][2]["serial"] = "0123";
  refused("serial.json", doc.dump(), "the recorded serial '0123' is not the certificate's");
  doc = good;
  doc["certificates"][3]["certificate"] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  refused("pem.json", doc.dump(), "certificate #4: the certificate does not parse");
  doc = good;
  doc["certificates"][1].erase("sha256");
  refused("column.json", doc.dump(), "certificate #2: 'sha256' missing or not a string");
  doc = good;
  doc["boxId"] = "not-an-id";
  refused("box.json", doc.dump(), "'boxId' missing or not 32 lower-case hex digits");
  b.ExpectAuditVerifies();
  // Usage: no file.
  EXPECT_EQ(b.Kubehsm({"ledger", "import"}).exit_code, 1);
}

// Ledger serials print as openssl prints them (whole bytes: a leading 0 when the top nibble is
// empty) and are accepted in either form.
TEST(LedgerMergeTest, SerialsPrintInOpensslsFormAndAreAcceptedInBoth) {
  Box a("box-a");
  std::string padded;
  for (int i = 0; i < 200 && padded.empty(); ++i) {
    const std::string s = a.Sign("worker-" + std::to_string(i));
    if (s.starts_with("0")) padded = s;
  }
  ASSERT_FALSE(padded.empty()) << "no serial with a leading 0 in 200 tries (1 in 16 each)";
  auto list = a.Kubehsm({"ledger", "list"});
  EXPECT_NE(list.out.find("\n" + padded + " "), std::string::npos) << list.out;
  for (const std::string& form : {padded, padded.substr(1)}) {
    auto show = a.Kubehsm({"ledger", "show", form});
    ASSERT_EQ(show.exit_code, 0) << form << ": " << show.err;
    EXPECT_EQ(nlohmann::json::parse(show.out)["serial"], padded);
  }
  const std::string audit = ReadTestFile(a.state_dir() / "audit.log");
  EXPECT_NE(audit.find("\"serial\":\"" + padded + "\""), std::string::npos) << "the audit record too";
  const nlohmann::json doc = a.Export();
  bool found = false;
  for (const auto& row : doc["certificates"]) found = found || row["serial"] == padded;
  EXPECT_TRUE(found) << "and the export";
}

// README "Backup and recovery", SoftHSM: back up, destroy, restore into another directory, keep
// issuing; then merge a second box's ledger into the restored one.
TEST(BackupRestoreTest, RestoredBoxKeepsIssuingWithUniqueSerials) {
  Box a("box-a");
  const std::string first = a.Sign("worker-1");
  TempDir backup;
  // The recipe: the token directory, an online SQLite backup of the ledger (never a plain copy of
  // a live WAL database), the audit log and its head, the CA certificates, config and PIN file.
  fs::copy(a.token().dir() / "tokens", backup.path() / "tokens", fs::copy_options::recursive);
  auto sq = RunProcess(
      {"sqlite3", (a.state_dir() / "ledger.db").string(), ".backup '" + (backup.path() / "ledger.db").string() + "'"});
  ASSERT_EQ(sq.exit_code, 0) << sq.err;
  // The head before the log (README: a record appended in between leaves the log one beyond its head).
  for (const char* f : {"audit.log.head", "audit.log", "user.pin"}) fs::copy_file(a.state_dir() / f, backup.path() / f);
  fs::copy(a.ca_dir(), backup.path() / "pki", fs::copy_options::recursive);
  // The box is lost: token, state and PKI directory are gone.
  fs::remove_all(a.token().dir() / "tokens");
  for (const char* f : {"ledger.db", "ledger.db-wal", "ledger.db-shm", "audit.log", "audit.log.head"}) {
    fs::remove(a.state_dir() / f);
  }
  fs::remove_all(a.ca_dir());
  ASSERT_NE(a.Kubehsm({"keys", "list"}).exit_code, 0) << "the token is gone";

  // Restore onto a "new box": another directory.
  TempDir box;
  const fs::path root = box.path() / "kubehsm";
  fs::create_directories(root);
  fs::permissions(root, fs::perms::owner_all);
  fs::copy(backup.path() / "tokens", root / "tokens", fs::copy_options::recursive);
  for (const char* f : {"ledger.db", "audit.log", "audit.log.head", "user.pin"}) {
    fs::copy_file(backup.path() / f, root / f);
  }
  fs::copy(backup.path() / "pki", root / "pki", fs::copy_options::recursive);
  WriteTestFile(root / "softhsm2.conf", "directories.tokendir = " + (root / "tokens").string() +
                                            "\nobjectstore.backend = file\nlog.level = ERROR\n");
  WriteTestFile(root / "kubehsm.conf", "module = " + a.token().module_path() + "\ntoken = " + a.token().token_uri() +
                                           "\npin-source = file:" + (root / "user.pin").string() + "\n");
  const std::map<std::string, std::string> env = {{"SOFTHSM2_CONF", (root / "softhsm2.conf").string()},
                                                  {"KUBEHSM_CONFIG", (root / "kubehsm.conf").string()}};
  auto verify = RunKubehsm({"audit", "verify"}, env);
  ASSERT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  auto show = RunKubehsm({"ledger", "show", first}, env);
  ASSERT_EQ(show.exit_code, 0) << show.err;
  auto check = RunKubehsm(
      {"pki", "verify", "--cert-dir", (root / "pki").string(), "--kubeconfig-dir", root.string(), "--check-token"},
      env);
  EXPECT_NE(check.out.find("OK      ca "), std::string::npos) << "the restored token holds the CA key: " << check.out;
  // Keep issuing on the restored box.
  WriteTestFile(root / "w2.csr", MakeCsr(Node("worker-2")));
  auto sign = RunKubehsm({"certs", "sign-csr", "--csr", (root / "w2.csr").string(), "--profile", "kubelet-client",
                          "--out", (root / "w2.crt").string(), "--cert-dir", (root / "pki").string()},
                         env);
  ASSERT_EQ(sign.exit_code, 0) << sign.err;
  auto chain = RunProcess({"openssl", "verify", "-CAfile", (root / "pki/ca.crt").string(), (root / "w2.crt").string()});
  EXPECT_EQ(chain.exit_code, 0) << chain.out << chain.err;

  // A second signing box (one box per CA set) merges into the restored one, and back.
  Box b("box-b");
  b.Sign("worker-3");
  WriteJson(root / "b.json", b.Export());
  auto imp = RunKubehsm({"ledger", "import", (root / "b.json").string()}, env);
  ASSERT_EQ(imp.exit_code, 0) << imp.err;
  auto list = RunKubehsm({"ledger", "list", "-o", "json"}, env);
  ASSERT_EQ(list.exit_code, 0) << list.err;
  std::vector<std::string> serials;
  for (const auto& row : nlohmann::json::parse(list.out)) serials.push_back(row["serial"].get<std::string>());
  EXPECT_EQ(serials.size(), 3u + 2u + 3u + 1u) << "A's CAs and two leaves, B's CAs and leaf";
  EXPECT_EQ(std::set<std::string>(serials.begin(), serials.end()).size(), serials.size()) << "serials unique";
  EXPECT_EQ(std::count(serials.begin(), serials.end(), first), 1);
  verify = RunKubehsm({"audit", "verify"}, env);
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  b.ExpectAuditVerifies();
  auto export_r = RunKubehsm({"ledger", "export", "--out", (root / "r.json").string()}, env);
  ASSERT_EQ(export_r.exit_code, 0) << export_r.err;
  ASSERT_EQ(b.Kubehsm({"ledger", "import", (root / "r.json").string()}).exit_code, 0);
  EXPECT_EQ(b.Serials().size(), serials.size());
  b.ExpectAuditVerifies();
}

// `kubehsm backup`: a consistent copy of the state (never the PIN file unless asked); with a copy
// of the SoftHSM token directory it restores a box that keeps issuing.
TEST(BackupRestoreTest, BackupCommandCopiesTheStateAndTheRestoredBoxKeepsIssuing) {
  Box a("box-a");
  const std::string first = a.Sign("worker-1");
  TempDir media;
  const fs::path out = media.path() / "backup";
  auto r = a.Kubehsm({"backup", "--out", out.string(), "--cert-dir", a.ca_dir().string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("not in this backup: the token's keys"), std::string::npos) << r.out;
  for (const char* f : {"ledger.db", "audit.log", "audit.log.head", "pki/ca.crt", "pki/front-proxy-ca.crt",
                        "pki/etcd/ca.crt", "kubehsm.conf", "MANIFEST"}) {
    EXPECT_TRUE(fs::is_regular_file(out / f)) << f;
    EXPECT_EQ(fs::status(out / f).permissions() & (fs::perms::group_all | fs::perms::others_all), fs::perms::none) << f;
  }
  EXPECT_FALSE(fs::exists(out / "user.pin")) << "no PIN file unless asked";
  EXPECT_EQ(ReadTestFile(out / "kubehsm.conf").find(a.token().user_pin()), std::string::npos);
  const std::string manifest = ReadTestFile(out / "MANIFEST");
  EXPECT_NE(manifest.find("box-id " + a.Export()["boxId"].get<std::string>() + "\n"), std::string::npos) << manifest;
  auto sha = RunProcess({"sha256sum", (out / "ledger.db").string()});
  EXPECT_NE(manifest.find(sha.out.substr(0, 64) + "  ledger.db\n"), std::string::npos) << manifest;
  auto integrity = RunProcess({"sqlite3", (out / "ledger.db").string(), "PRAGMA integrity_check"});
  EXPECT_EQ(integrity.out, "ok\n") << integrity.err;
  auto copied_log = a.Kubehsm({"audit", "verify", "--log", (out / "audit.log").string()});
  EXPECT_EQ(copied_log.exit_code, 0) << copied_log.out << copied_log.err;
  // Not over an existing backup; the PIN file only when asked, 0600.
  EXPECT_EQ(a.Kubehsm({"backup", "--out", out.string(), "--cert-dir", a.ca_dir().string()}).exit_code, 2);
  const fs::path with_pin = media.path() / "with-pin";
  r = a.Kubehsm({"backup", "--out", with_pin.string(), "--cert-dir", a.ca_dir().string(), "--include-pin-file"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadTestFile(with_pin / "user.pin"), ReadTestFile(a.token().user_pin_file()));
  EXPECT_EQ(fs::status(with_pin / "user.pin").permissions(), fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(
      a.Kubehsm({"backup", "--out", (media.path() / "x").string(), "--cert-dir", (media.path() / "no-pki").string()})
          .exit_code,
      2);
  // The token directory is copied as the token's own backup.
  fs::copy(a.token().dir() / "tokens", media.path() / "tokens", fs::copy_options::recursive);

  // Restore elsewhere and keep issuing.
  TempDir box;
  const fs::path root = box.path() / "kubehsm";
  fs::create_directories(root);
  fs::permissions(root, fs::perms::owner_all);
  fs::copy(media.path() / "tokens", root / "tokens", fs::copy_options::recursive);
  for (const char* f : {"ledger.db", "audit.log", "audit.log.head", "user.pin"}) {
    fs::copy_file((f == std::string("user.pin") ? with_pin : out) / f, root / f);
  }
  fs::copy(out / "pki", root / "pki", fs::copy_options::recursive);
  WriteTestFile(root / "softhsm2.conf", "directories.tokendir = " + (root / "tokens").string() +
                                            "\nobjectstore.backend = file\nlog.level = ERROR\n");
  WriteTestFile(root / "kubehsm.conf", "module = " + a.token().module_path() + "\ntoken = " + a.token().token_uri() +
                                           "\npin-source = file:" + (root / "user.pin").string() + "\n");
  const std::map<std::string, std::string> env = {{"SOFTHSM2_CONF", (root / "softhsm2.conf").string()},
                                                  {"KUBEHSM_CONFIG", (root / "kubehsm.conf").string()}};
  auto verify = RunKubehsm({"audit", "verify"}, env);
  ASSERT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  ASSERT_EQ(RunKubehsm({"ledger", "show", first}, env).exit_code, 0);
  WriteTestFile(root / "w2.csr", MakeCsr(Node("worker-2")));
  auto sign = RunKubehsm({"certs", "sign-csr", "--csr", (root / "w2.csr").string(), "--profile", "kubelet-client",
                          "--out", (root / "w2.crt").string(), "--cert-dir", (root / "pki").string()},
                         env);
  ASSERT_EQ(sign.exit_code, 0) << sign.err;
  auto chain = RunProcess({"openssl", "verify", "-CAfile", (root / "pki/ca.crt").string(), (root / "w2.crt").string()});
  EXPECT_EQ(chain.exit_code, 0) << chain.out << chain.err;
  auto list = RunKubehsm({"ledger", "list", "-o", "json"}, env);
  std::vector<std::string> serials;
  for (const auto& row : nlohmann::json::parse(list.out)) serials.push_back(row["serial"].get<std::string>());
  EXPECT_EQ(serials.size(), 5u);
  EXPECT_EQ(std::set<std::string>(serials.begin(), serials.end()).size(), serials.size());
  verify = RunKubehsm({"audit", "verify"}, env);
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

}  // namespace
}  // namespace kubehsm::signer::pki
