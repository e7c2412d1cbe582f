#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "common/file_util.h"
#include "common/key_type.h"
#include "common/status.h"
#include "tests/support/test_env.h"

namespace kubehsm {
namespace {

using testing::ReadTestFile;
using testing::TempDir;

TEST(StatusTest, ResultCarriesValueOrStatus) {
  Result<int> good = 7;
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 7);
  Result<int> bad = NotFound("no such key");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(bad.status().WithContext("keys pubkey").message(), "keys pubkey: no such key");
}

TEST(KeyTypeTest, ParsesOwnAndKubeadmSpellings) {
  EXPECT_EQ(ParseKeyType("rsa-2048"), KeyType::kRsa2048);
  EXPECT_EQ(ParseKeyType("ECDSA-P256"), KeyType::kEcP256);
  EXPECT_EQ(ParseKeyType("ecdsa-p521"), KeyType::kEcP521);
  EXPECT_FALSE(ParseKeyType("rsa-1024").has_value());
  EXPECT_FALSE(ParseKeyType("").has_value());
  EXPECT_EQ(DefaultDigestName(KeyType::kEcP384), "SHA384");
}

TEST(FileUtilTest, WriteFileAtomicCreatesWithModeAndReplaces) {
  TempDir dir;
  auto p = dir.path() / "a.key";
  ASSERT_TRUE(WriteFileAtomic(p, "first", 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(p, "second", 0644).ok());
  EXPECT_EQ(ReadTestFile(p), "second");
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  // No temporary file is left behind.
  int n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(dir.path())) ++n;
  EXPECT_EQ(n, 1);
}

TEST(FileUtilTest, WriteFileAtomicRefusesSymlinkTarget) {
  TempDir dir;
  auto target = dir.path() / "elsewhere";
  testing::WriteTestFile(target, "keep");
  std::filesystem::create_symlink(target, dir.path() / "link");
  Status s = WriteFileAtomic(dir.path() / "link", "evil", 0600);
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(ReadTestFile(target), "keep");
}

TEST(FileUtilTest, WriteFileAtomicRefusesWorldWritableDirectory) {
  TempDir dir;
  std::filesystem::create_directory(dir.path() / "open");
  std::filesystem::permissions(dir.path() / "open", std::filesystem::perms::all);
  Status s = WriteFileAtomic(dir.path() / "open" / "ca.crt", "x", 0644);
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("world-writable directory"), std::string::npos) << s.message();
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "open" / "ca.crt"));
}

TEST(FileUtilTest, WriteFileAtomicRefusesDirectoryOfAnotherUser) {
  TempDir dir;
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  std::filesystem::create_directory(dir.path() / "theirs");
  ASSERT_EQ(::chown((dir.path() / "theirs").c_str(), 65534, 65534), 0);
  Status s = WriteFileAtomic(dir.path() / "theirs" / "x.key", "x", 0600);
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("owned by another user"), std::string::npos) << s.message();
}

TEST(FileUtilTest, WriteFileAtomicFailsCleanlyInMissingDirectory) {
  TempDir dir;
  Status s = WriteFileAtomic(dir.path() / "nope" / "x.crt", "data", 0644);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("nope"), std::string::npos);
}

TEST(FileUtilTest, ReadFileBoundedEnforcesLimit) {
  TempDir dir;
  testing::WriteTestFile(dir.path() / "big", std::string(100, 'x'));
  EXPECT_EQ(ReadFileBounded(dir.path() / "big", 100).value().size(), 100u);
  auto r = ReadFileBounded(dir.path() / "big", 99);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadFileBounded(dir.path() / "absent", 10).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace kubehsm
