#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "ledger/audit_log.h"
#include "tests/support/test_env.h"

namespace kubehsm::ledger {
namespace {

using testing::ReadTestFile;
using testing::WriteTestFile;

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string l;
  while (std::getline(in, l)) out.push_back(l);
  return out;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = std::make_unique<AuditLog>(dir_.path() / "audit.log");
    for (int i = 1; i <= 5; ++i) {
      ASSERT_TRUE(log_->Append("cert-issue", {{"serial", std::to_string(i)}, {"ca", "ca"}}).ok());
    }
  }
  void ExpectFails(const std::string& part) {
    auto v = log_->Verify();
    ASSERT_FALSE(v.ok());
    EXPECT_NE(v.status().message().find(part), std::string::npos) << v.status().message();
  }
  testing::TempDir dir_;
  std::unique_ptr<AuditLog> log_;
};

TEST_F(AuditLogTest, IntactChainVerifies) {
  auto v = log_->Verify();
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(v->records, 5);
  auto lines = Lines(ReadTestFile(log_->path()));
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_NE(lines[0].find("\"prev\":\"0000000000000000"), std::string::npos);
  EXPECT_NE(lines[2].find("\"event\":\"cert-issue\""), std::string::npos);
}

TEST_F(AuditLogTest, EditedRecordIsNamed) {
  auto lines = Lines(ReadTestFile(log_->path()));
  const auto pos = lines[2].find("\"serial\":\"3\"");
  ASSERT_NE(pos, std::string::npos);
  lines[2].replace(pos, 12, "\"serial\":\"9\"");
  WriteTestFile(log_->path(), Join(lines));
  ExpectFails("record 3 (line 3): hash mismatch");
}

TEST_F(AuditLogTest, EditedRecordWithRecomputedHashBreaksTheChain) {
  // An attacker who recomputes the record's own hash still breaks the next record's `prev`.
  auto lines = Lines(ReadTestFile(log_->path()));
  AuditLog other(dir_.path() / "other.log");
  ASSERT_TRUE(other.Append("x", {}).ok());
  ASSERT_TRUE(other.Append("x", {}).ok());
  ASSERT_TRUE(other.Append("forged", {}).ok());  // a well-formed record 3 with another hash
  lines[2] = Lines(ReadTestFile(other.path()))[2];
  WriteTestFile(log_->path(), Join(lines));
  auto v = log_->Verify();
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("record 3"), std::string::npos) << v.status().message();
}

TEST_F(AuditLogTest, RemovedRecordIsNamed) {
  auto lines = Lines(ReadTestFile(log_->path()));
  lines.erase(lines.begin() + 1);
  WriteTestFile(log_->path(), Join(lines));
  ExpectFails("record 2 missing or out of order");
}

TEST_F(AuditLogTest, ReorderedRecordsAreDetected) {
  auto lines = Lines(ReadTestFile(log_->path()));
  std::swap(lines[1], lines[2]);
  WriteTestFile(log_->path(), Join(lines));
  ExpectFails("record 2");
}

TEST_F(AuditLogTest, TruncatedTailIsDetectedThroughTheHead) {
  auto lines = Lines(ReadTestFile(log_->path()));
  lines.resize(3);
  WriteTestFile(log_->path(), Join(lines));
  ExpectFails("truncated after record 3");
}

// One record after the head is the window of a writer killed between its two writes: reported.
// Two cannot come from a crash: refused. Appends refuse to continue a partial last line.
TEST_F(AuditLogTest, RecordsBeyondTheHeadAreReportedAndTwoFail) {
  const std::string head = ReadTestFile(log_->head_path());
  ASSERT_TRUE(log_->Append("cert-issue", {{"serial", "6"}}).ok());
  WriteTestFile(log_->head_path(), head);
  auto one = log_->Verify();
  ASSERT_TRUE(one.ok()) << one.status().message();
  EXPECT_EQ(one->beyond_head, 1);
  const std::string lines = ReadTestFile(log_->path());
  ASSERT_TRUE(log_->Append("cert-issue", {{"serial", "7"}}).ok());
  WriteTestFile(log_->head_path(), head);
  ExpectFails("2 record(s) beyond the head");
  EXPECT_EQ(log_->Verify().status().code(), StatusCode::kFailedPrecondition);
  WriteTestFile(log_->path(), lines + "{\"seq\":");
  EXPECT_EQ(log_->Append("cert-issue", {{"serial", "8"}}).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(log_->CheckAppendable().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReadTestFile(log_->path()), lines + "{\"seq\":");
}

TEST_F(AuditLogTest, PartialLastLineIsDetected) {
  std::string all = ReadTestFile(log_->path());
  WriteTestFile(log_->path(), all.substr(0, all.size() - 20));
  ExpectFails("record 5");
}

TEST_F(AuditLogTest, DeletedLogIsDetected) {
  std::filesystem::remove(log_->path());
  ExpectFails("is missing but its head file exists");
}

TEST(AuditLogEmptyTest, NoLogYetVerifiesWithZeroRecords) {
  testing::TempDir dir;
  AuditLog log(dir.path() / "audit.log");
  auto v = log.Verify();
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(v->records, 0);
}

TEST_F(AuditLogTest, MissingHeadIsDetected) {
  std::filesystem::remove(log_->head_path());
  ExpectFails("head file");
}

TEST_F(AuditLogTest, ConcurrentProcessesKeepOneChain) {
  std::vector<pid_t> kids;
  for (int p = 0; p < 2; ++p) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      AuditLog l(log_->path());
      for (int i = 0; i < 100; ++i) {
        if (!l.Append("token-sign", {{"count", std::to_string(i)}}).ok()) ::_exit(2);
      }
      ::_exit(0);
    }
    kids.push_back(pid);
  }
  for (pid_t k : kids) {
    int status = 0;
    ::waitpid(k, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  auto v = log_->Verify();
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(v->records, 205);
}

}  // namespace
}  // namespace kubehsm::ledger
