#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ledger/ledger.h"
#include "tests/support/test_env.h"

namespace kubehsm::ledger {
namespace {

IssuanceRecord MakeRecord(const std::string& serial) {
  IssuanceRecord r;
  r.serial_hex = serial;
  r.issuer_ca = "ca";
  r.subject = "CN=kube-apiserver";
  r.sans = {"DNS:kubernetes", "IP:10.96.0.1"};
  r.profile = "apiserver";
  r.operation = "init";
  r.not_before = 1700000000;
  r.not_after = 1731536000;
  r.sha256_fingerprint = "fp-" + serial;
  r.requester = "root";
  r.host = "box";
  r.issued_at = 1700000300;
  r.cert_pem = "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n";
  return r;
}

TEST(LedgerTest, RecordsAndReadsBack) {
  testing::TempDir dir;
  auto l = Ledger::Open(dir.path() / "ledger.db");
  ASSERT_TRUE(l.ok()) << l.status().message();
  ASSERT_TRUE((*l)->Record(MakeRecord("1a2b")).ok());
  auto got = (*l)->Get("00:1A:2B");
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->serial_hex, "1A2B");
  EXPECT_EQ(got->sans, (std::vector<std::string>{"DNS:kubernetes", "IP:10.96.0.1"}));
  EXPECT_EQ(got->profile, "apiserver");
  EXPECT_EQ(got->not_after, 1731536000);
  EXPECT_EQ((*l)->Count().value(), 1);
  EXPECT_TRUE((*l)->Contains("1A2B").value());
  EXPECT_EQ((*l)->Get("FFFF").status().code(), StatusCode::kNotFound);
}

TEST(LedgerTest, DuplicateSerialIsRefused) {
  testing::TempDir dir;
  auto l = Ledger::Open(dir.path() / "ledger.db");
  ASSERT_TRUE((*l)->Record(MakeRecord("ABCD")).ok());
  IssuanceRecord dup = MakeRecord("abcd");
  dup.sha256_fingerprint = "other";
  dup.issuer_ca = "etcd-ca";  // unique across CAs
  Status s = (*l)->Record(dup);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ((*l)->Count().value(), 1);
}

TEST(LedgerTest, IssueInTransactionRetriesWithFreshSerialOnCollision) {
  testing::TempDir dir;
  auto l = Ledger::Open(dir.path() / "ledger.db");
  ASSERT_TRUE((*l)->Record(MakeRecord("77")).ok());
  int calls = 0;
  auto r = (*l)->IssueInTransaction([&]() -> Result<IssuanceRecord> {
    ++calls;
    return MakeRecord(calls == 1 ? "77" : "78");  // the first attempt collides
  });
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(r->serial_hex, "78");
  EXPECT_EQ((*l)->Count().value(), 2);
}

TEST(LedgerTest, IssueErrorRollsBackAndRecordsNothing) {
  testing::TempDir dir;
  auto l = Ledger::Open(dir.path() / "ledger.db");
  auto r = (*l)->IssueInTransaction([]() -> Result<IssuanceRecord> { return Unavailable("token gone"); });
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ((*l)->Count().value(), 0);
  EXPECT_TRUE((*l)->Record(MakeRecord("01")).ok());  // no transaction left open
}

// The audit append runs inside the row's transaction: a failing append leaves no row.
TEST(LedgerTest, RecordThenRollsBackWhenTheAuditAppendFails) {
  testing::TempDir dir;
  auto l = Ledger::Open(dir.path() / "ledger.db").value();
  EXPECT_EQ(l->RecordThen(MakeRecord("AA"), [] { return Unavailable("audit: disk full"); }).code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(l->Count().value(), 0);
  EXPECT_FALSE(l->Contains("AA").value());
  ASSERT_TRUE(l->RecordThen(MakeRecord("AA"), [] { return OkStatus(); }).ok());
  EXPECT_EQ(l->Count().value(), 1);
  EXPECT_EQ(CheckLedgerAudited(*l, {"AA"}).code(), StatusCode::kOk);
  EXPECT_EQ(CheckLedgerAudited(*l, {}).code(), StatusCode::kFailedPrecondition);
}

// A symlinked or foreign ledger file is refused, and the symlink's target is not touched.
TEST(LedgerTest, SymlinkedLedgerIsRefused) {
  testing::TempDir dir;
  testing::WriteTestFile(dir.path() / "decoy", "");
  std::filesystem::create_symlink(dir.path() / "decoy", dir.path() / "ledger.db");
  auto l = Ledger::Open(dir.path() / "ledger.db");
  ASSERT_EQ(l.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(l.status().message().find("symlink"), std::string::npos);
  EXPECT_EQ(testing::ReadTestFile(dir.path() / "decoy"), "");
}

TEST(LedgerTest, ListFiltersAndKeepsOrder) {
  testing::TempDir dir;
  auto l = Ledger::Open(dir.path() / "ledger.db");
  for (int i = 1; i <= 5; ++i) {
    IssuanceRecord r = MakeRecord(std::to_string(i));
    r.issuer_ca = i % 2 == 0 ? "etcd-ca" : "ca";
    ASSERT_TRUE((*l)->Record(r).ok());
  }
  ListFilter f;
  f.issuer_ca = "ca";
  auto rows = (*l)->List(f);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[0].serial_hex, "01");
  EXPECT_EQ((*rows)[2].serial_hex, "05");
}

// openssl prints whole bytes: "01BBD166F9FE495E", never "1BBD166F9FE495E".
TEST(LedgerTest, SerialsAreNormalizedToOpensslsForm) {
  EXPECT_EQ(NormalizeSerialHex("1BBD166F9FE495E"), "01BBD166F9FE495E");
  EXPECT_EQ(NormalizeSerialHex("01bbd166f9fe495e"), "01BBD166F9FE495E");
  EXPECT_EQ(NormalizeSerialHex("00:01:BB:D1"), "01BBD1");
  EXPECT_EQ(NormalizeSerialHex("0001BBD1"), "01BBD1");
  EXPECT_EQ(NormalizeSerialHex("7F"), "7F");
  EXPECT_EQ(NormalizeSerialHex("0"), "00");
  testing::TempDir dir;
  auto l = Ledger::Open(dir.path() / "ledger.db");
  ASSERT_TRUE(l.ok()) << l.status().message();
  ASSERT_TRUE((*l)->Record(MakeRecord("1BBD166F9FE495E")).ok());
  for (const char* form : {"1BBD166F9FE495E", "01BBD166F9FE495E", "01:bb:d1:66:f9:fe:49:5e"}) {
    auto got = (*l)->Get(form);
    ASSERT_TRUE(got.ok()) << form << ": " << got.status().message();
    EXPECT_EQ(got->serial_hex, "01BBD166F9FE495E");
  }
}

// A schema-1 ledger (serials without openssl's leading 0, no box id) is upgraded on open: the
// serials get their 0, the ledger gets a box id, and its rows name it.
TEST(LedgerTest, SchemaOneLedgerIsUpgraded) {
  testing::TempDir dir;
  const auto path = dir.path() / "ledger.db";
  auto made = testing::RunProcess(
      {"sqlite3", path.string(),
       "CREATE TABLE certificates (id INTEGER PRIMARY KEY AUTOINCREMENT, serial TEXT NOT NULL UNIQUE,"
       " issuer_ca TEXT NOT NULL, subject TEXT NOT NULL, sans TEXT NOT NULL, profile TEXT NOT NULL,"
       " operation TEXT NOT NULL, not_before INTEGER NOT NULL, not_after INTEGER NOT NULL,"
       " sha256 TEXT NOT NULL UNIQUE, requester TEXT NOT NULL, host TEXT NOT NULL, issued_at INTEGER NOT NULL,"
       " cert_pem TEXT NOT NULL);"
       "INSERT INTO certificates VALUES (1, '1BBD166F9FE495E', 'ca', 'CN=a', '', 'apiserver', 'init', 1, 2, 'f1',"
       " 'root', 'box', 3, 'pem');"
       "INSERT INTO certificates VALUES (2, '2BBD166F9FE495E0', 'ca', 'CN=b', '', 'apiserver', 'init', 1, 2, 'f2',"
       " 'root', 'box', 3, 'pem');"
       "PRAGMA user_version=1;"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ::chmod(path.c_str(), 0600);
  auto l = Ledger::Open(path);
  ASSERT_TRUE(l.ok()) << l.status().message();
  const std::string box = (*l)->box_id();
  EXPECT_EQ(box.size(), 32u);
  EXPECT_EQ(box.find_first_not_of("0123456789abcdef"), std::string::npos) << box;
  auto rows = (*l)->List();
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].serial_hex, "01BBD166F9FE495E");
  EXPECT_EQ((*rows)[1].serial_hex, "2BBD166F9FE495E0");
  EXPECT_EQ((*rows)[0].box_id, box);
  // The box id is stable across opens.
  l->reset();
  auto again = Ledger::Open(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->box_id(), box);
  // Audit records written before the upgrade name the short form: the cross-check accepts it.
  EXPECT_TRUE(CheckLedgerAudited(**again, {"1BBD166F9FE495E", "2BBD166F9FE495E0"}).ok());
  EXPECT_FALSE(CheckLedgerAudited(**again, {"1BBD166F9FE495E"}).ok());
}

TEST(LedgerTest, ImportSkipsIdenticalRowsAndRefusesCollisionsAtomically) {
  testing::TempDir dir;
  auto l = Ledger::Open(dir.path() / "ledger.db");
  ASSERT_TRUE(l.ok());
  ASSERT_TRUE((*l)->Record(MakeRecord("0A")).ok());
  const std::string other_box(32, 'b');
  IssuanceRecord theirs = MakeRecord("0B");
  theirs.box_id = other_box;
  int audited = 0;
  const auto audit = [&](const ImportCounts&) {
    ++audited;
    return OkStatus();
  };
  auto c = (*l)->Import({theirs}, audit);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->added, 1);
  EXPECT_EQ(c->added_serials, std::vector<std::string>{"0B"});
  EXPECT_EQ((*l)->Get("0B")->box_id, other_box);
  EXPECT_EQ((*l)->Get("0A")->box_id, (*l)->box_id());
  // Again: identical, nothing added.
  c = (*l)->Import({theirs}, audit);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->added, 0);
  EXPECT_EQ(c->identical, 1);
  // A collision (same serial, other content) after a new row: nothing of the batch stays.
  IssuanceRecord fresh = MakeRecord("0C");
  fresh.box_id = other_box;
  IssuanceRecord clash = MakeRecord("0A");
  clash.box_id = other_box;
  clash.sha256_fingerprint = "another";
  c = (*l)->Import({fresh, clash}, audit);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(c.status().message().find("serial collision: serial 0A"), std::string::npos) << c.status().message();
  EXPECT_FALSE((*l)->Contains("0C").value());
  EXPECT_EQ(audited, 2) << "no audit for the refused import";
  // The audit callback failing rolls the rows back too.
  c = (*l)->Import({fresh}, [](const ImportCounts&) { return Unavailable("disk full"); });
  ASSERT_FALSE(c.ok());
  EXPECT_FALSE((*l)->Contains("0C").value());
  EXPECT_EQ((*l)->Count().value(), 2);
}

TEST(LedgerTest, NotALedgerFileIsRefused) {
  testing::TempDir dir;
  testing::WriteTestFile(dir.path() / "junk.db", std::string(4096, 'x'));
  auto l = Ledger::Open(dir.path() / "junk.db");
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find("junk.db"), std::string::npos) << l.status().message();
}

TEST(LedgerTest, NewLedgerFileIsPrivate) {
  testing::TempDir dir;
  auto l = Ledger::Open(dir.path() / "ledger.db");
  ASSERT_TRUE(l.ok());
  struct stat st {};
  ASSERT_EQ(::stat((dir.path() / "ledger.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u);
}

// Two processes recording at once never produce a duplicate serial and lose nothing.
TEST(LedgerTest, ConcurrentProcessesNeverDuplicateSerials) {
  testing::TempDir dir;
  const auto path = dir.path() / "ledger.db";
  ASSERT_TRUE(Ledger::Open(path).ok());
  std::vector<pid_t> kids;
  for (int p = 0; p < 2; ++p) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto l = Ledger::Open(path);
      if (!l.ok()) ::_exit(3);
      // Small serial space so collisions really happen between the processes.
      std::mt19937_64 rng(static_cast<uint64_t>(::getpid()));
      for (int i = 0; i < 150; ++i) {
        auto r = (*l)->IssueInTransaction([&]() -> Result<IssuanceRecord> {
          IssuanceRecord rec = MakeRecord(std::to_string(rng() % 400 + 1));
          rec.sha256_fingerprint = "fp-" + std::to_string(::getpid()) + "-" + std::to_string(i);
          return rec;
        });
        if (!r.ok() && r.status().code() != StatusCode::kInternal) ::_exit(4);
      }
      ::_exit(0);
    }
    kids.push_back(pid);
  }
  for (pid_t k : kids) {
    int status = 0;
    ::waitpid(k, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  auto l = Ledger::Open(path);
  auto rows = (*l)->List();
  ASSERT_TRUE(rows.ok());
  std::set<std::string> serials;
  for (const auto& r : *rows) EXPECT_TRUE(serials.insert(r.serial_hex).second) << r.serial_hex;
  EXPECT_GE(rows->size(), 250u);  // 300 attempts in a 400-serial space; a few may exhaust retries
}

// SIGKILL in the middle of a burst of writes leaves a ledger that opens cleanly and holds every
// record whose Record() returned.
TEST(LedgerTest, SigkillMidWriteLeavesConsistentLedger) {
  testing::TempDir dir;
  const auto path = dir.path() / "ledger.db";
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    auto l = Ledger::Open(path);
    for (int i = 1; l.ok(); ++i) {
      if (!(*l)->Record(MakeRecord(std::to_string(i))).ok()) ::_exit(5);
      // Report each durable serial to the parent.
      const std::string s = std::to_string(i) + "\n";
      if (::write(fds[1], s.data(), s.size()) < 0) ::_exit(6);
    }
    ::_exit(7);
  }
  ::close(fds[1]);
  std::string acked;
  char buf[256];
  while (std::count(acked.begin(), acked.end(), '\n') < 40) {
    ssize_t n = ::read(fds[0], buf, sizeof(buf));
    ASSERT_GT(n, 0);
    acked.append(buf, static_cast<size_t>(n));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(fds[0]);
  auto l = Ledger::Open(path);
  ASSERT_TRUE(l.ok()) << l.status().message();
  std::istringstream in(acked);
  std::string serial;
  while (std::getline(in, serial)) EXPECT_TRUE((*l)->Contains(serial).value()) << serial;
}

}  // namespace
}  // namespace kubehsm::ledger
