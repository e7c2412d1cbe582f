// common/terminal_text.h: what reaches an operator's terminal from untrusted input.
#include "common/terminal_text.h"

#include <string>

#include <gtest/gtest.h>

namespace kubehsm {
namespace {

TEST(EscapeForTerminalTest, ControlBytesBecomeHexEscapes) {
  EXPECT_EQ(EscapeForTerminal("a\x1b[2Jb"), "a\\x1b[2Jb");
  EXPECT_EQ(EscapeForTerminal(std::string("n\0l", 3)), "n\\x00l");
  EXPECT_EQ(EscapeForTerminal("line1\r\nline2\t\x7f"), "line1\\x0d\\x0aline2\\x09\\x7f");
}

TEST(EscapeForTerminalTest, PrintableAsciiAndUtf8PassUnchanged) {
  EXPECT_EQ(EscapeForTerminal("system:node:w1 ^[a-z]+\\.example$"), "system:node:w1 ^[a-z]+\\.example$");
  EXPECT_EQ(EscapeForTerminal("Grüße, 東京"), "Grüße, 東京");
}

TEST(EscapeForTerminalTest, C1ControlsBidiOverridesAndInvalidUtf8AreEscaped) {
  EXPECT_EQ(EscapeForTerminal("\xc2\x9b"
                              "2J"),
            "\\xc2\\x9b2J");  // U+009B, the 8-bit CSI
  EXPECT_EQ(EscapeForTerminal("abc\xe2\x80\xae"
                              "fdp.exe"),
            "abc\\xe2\\x80\\xaefdp.exe");                           // U+202E RLO
  EXPECT_EQ(EscapeForTerminal("\xff\xc0\xaf"), "\\xff\\xc0\\xaf");  // invalid, overlong '/'
  EXPECT_EQ(EscapeForTerminal("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a UTF-16 surrogate
  EXPECT_EQ(EscapeForTerminal("cut\xe6\x9d"), "cut\\xe6\\x9d");     // truncated sequence
}

}  // namespace
}  // namespace kubehsm
