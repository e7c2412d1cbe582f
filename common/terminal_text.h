// Making untrusted text safe to print on an operator's terminal. Strings that come from input
// (CSR subjects and SANs, file names inside archives, ledger rows, anything quoted in an error
// message) may carry terminal control sequences that would rewrite what the operator sees
// (ESC [ ... sequences, carriage returns, bidi overrides). Every such string is passed through
// EscapeForTerminal where it is printed.
#pragma once

#include <string>
#include <string_view>

namespace kubehsm {

// Returns `text` with every byte that is not printable written as `\xNN` (two lower-case hex
// digits): C0 controls (including tab, CR and LF, so the result is one line), DEL, the bytes of
// invalid or overlong UTF-8, and of the UTF-8 encodings of C1 controls (U+0080..U+009F) and of the
// bidirectional formatting characters (U+200E, U+200F, U+202A..U+202E, U+2066..U+2069). Printable
// ASCII and other valid UTF-8 pass unchanged; a backslash is not doubled (the output is for
// reading, not for parsing back). Never fails.
std::string EscapeForTerminal(std::string_view text);

}  // namespace kubehsm
