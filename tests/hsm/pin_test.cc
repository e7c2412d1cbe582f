#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "hsm/pin.h"
#include "tests/support/test_env.h"

namespace kubehsm::hsm {
namespace {

std::string PinText(const Pin& p) { return std::string(reinterpret_cast<const char*>(p.data()), p.size()); }

TEST(PinSourceTest, ParsesEveryForm) {
  EXPECT_EQ(PinSource::Parse("env:KUBEHSM_PIN")->kind, PinSource::Kind::kEnv);
  EXPECT_EQ(PinSource::Parse("file:/run/pin")->where, "/run/pin");
  EXPECT_EQ(PinSource::Parse("/run/pin")->kind, PinSource::Kind::kFile);
  EXPECT_EQ(PinSource::Parse("fd:3")->where, "3");
  EXPECT_EQ(PinSource::Parse("prompt")->kind, PinSource::Kind::kPrompt);
}

TEST(PinSourceTest, RejectsMalformedSources) {
  EXPECT_EQ(PinSource::Parse("env:").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(PinSource::Parse("fd:x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(PinSource::Parse("|cat pin").status().code(), StatusCode::kInvalidArgument);
  // A literal PIN given where a source is expected is refused and not echoed.
  auto s = PinSource::Parse("123456");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message().find("123456"), std::string::npos);
}

// Found by fuzz/pin_source_fuzzer: "fd:-0" was accepted (from_chars takes the sign) as fd 0.
TEST(PinSourceTest, RejectsSignedFileDescriptor) {
  EXPECT_EQ(PinSource::Parse("fd:-0").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(PinSource::Parse("fd:-3").status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(PinSource::Parse("fd:0").ok());
}

TEST(ReadPinTest, ReadsFromEnvironment) {
  ::setenv("KUBEHSM_TEST_PIN", "env-pin\n", 1);
  auto pin = ReadPin(*PinSource::Parse("env:KUBEHSM_TEST_PIN"));
  ASSERT_TRUE(pin.ok());
  EXPECT_EQ(PinText(*pin), "env-pin");
  ::unsetenv("KUBEHSM_TEST_PIN");
  EXPECT_EQ(ReadPin(*PinSource::Parse("env:KUBEHSM_TEST_PIN")).status().code(), StatusCode::kNotFound);
}

// Issue #14: an env: PIN is read once and then gone (no child process or library can find it), and
// reading any PIN makes the process non-dumpable with no core file.
TEST(ReadPinTest, EnvironmentPinIsRemovedOnceReadAndTheProcessIsNotDumpable) {
  ::setenv("KUBEHSM_TEST_PIN_ONCE", "once-pin", 1);
  auto pin = ReadPin(*PinSource::Parse("env:KUBEHSM_TEST_PIN_ONCE"));
  ASSERT_TRUE(pin.ok());
  EXPECT_EQ(PinText(*pin), "once-pin");
  EXPECT_EQ(std::getenv("KUBEHSM_TEST_PIN_ONCE"), nullptr);
  EXPECT_EQ(ReadPin(*PinSource::Parse("env:KUBEHSM_TEST_PIN_ONCE")).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
  rlimit core{};
  ASSERT_EQ(::getrlimit(RLIMIT_CORE, &core), 0);
  EXPECT_EQ(core.rlim_cur, 0u);
  EXPECT_EQ(core.rlim_max, 0u);
}

TEST(ReadPinTest, ReadsFromFileStrippingOneNewline) {
  testing::TempDir dir;
  testing::WriteTestFile(dir.path() / "pin", "file-pin\r\n", 0600);
  auto pin = ReadPin(*PinSource::Parse("file:" + (dir.path() / "pin").string()));
  ASSERT_TRUE(pin.ok()) << pin.status().message();
  EXPECT_EQ(PinText(*pin), "file-pin");
}

TEST(ReadPinTest, RefusesWorldReadablePinFile) {
  testing::TempDir dir;
  testing::WriteTestFile(dir.path() / "pin", "1234", 0644);
  auto pin = ReadPin(*PinSource::Parse("file:" + (dir.path() / "pin").string()));
  EXPECT_EQ(pin.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(pin.status().message().find("1234"), std::string::npos);
}

TEST(ReadPinTest, RefusesEmptyPin) {
  testing::TempDir dir;
  testing::WriteTestFile(dir.path() / "pin", "\n", 0600);
  EXPECT_EQ(ReadPin(*PinSource::Parse("file:" + (dir.path() / "pin").string())).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(ReadPinTest, MissingFileIsNotFound) {
  EXPECT_EQ(ReadPin(*PinSource::Parse("file:/nonexistent/pin")).status().code(), StatusCode::kNotFound);
}

TEST(ReadPinTest, ReadsFromFileDescriptorUpToNewline) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], "fd-pin\nrest", 11), 11);
  auto pin = ReadPin(*PinSource::Parse("fd:" + std::to_string(fds[0])));
  ::close(fds[0]);
  ::close(fds[1]);
  ASSERT_TRUE(pin.ok()) << pin.status().message();
  EXPECT_EQ(PinText(*pin), "fd-pin");
}

TEST(ReadPinTest, ClosedFileDescriptorIsNotFound) {
  EXPECT_EQ(ReadPin(*PinSource::Parse("fd:987")).status().code(), StatusCode::kNotFound);
}

TEST(PinTest, MoveLeavesSourceEmpty) {
  Pin a("secret");
  Pin b(std::move(a));
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): checking the wipe
  EXPECT_EQ(PinText(b), "secret");
}

}  // namespace
}  // namespace kubehsm::hsm
