// PINs: a move-only type that wipes its memory and cannot be printed, and the pin sources it is
// read from. A PIN never comes from argv: only from an environment variable, a file, an inherited
// file descriptor, or an interactive no-echo prompt.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace kubehsm::hsm {

// A secret byte string. Its buffer is wiped (OPENSSL_cleanse) when destroyed or moved from. It has
// no operator<< and no implicit conversion, so it cannot reach a log by accident.
class Pin final {
 public:
  Pin() = default;
  explicit Pin(std::string_view value);
  Pin(const Pin&) = delete;  // copies would leave unwiped secrets around
  Pin& operator=(const Pin&) = delete;
  Pin(Pin&& other) noexcept;
  Pin& operator=(Pin&& other) noexcept;
  ~Pin();

  bool empty() const { return bytes_.empty(); }
  std::size_t size() const { return bytes_.size(); }
  // The raw bytes, for C_Login only. Do not copy them elsewhere.
  const unsigned char* data() const { return bytes_.data(); }

 private:
  void Wipe();
  std::vector<unsigned char> bytes_;
};

// Where a PIN comes from. Text forms: "env:VAR", "file:PATH", "fd:N", "prompt".
struct PinSource {
  enum class Kind { kEnv, kFile, kFd, kPrompt };
  Kind kind = Kind::kPrompt;
  std::string where;  // variable name, path or fd number; empty for kPrompt

  // Parses the text form. A bare path (as RFC 7512's pin-source query attribute carries it) is
  // accepted as a file. Fails with kInvalidArgument on anything else; the message never echoes
  // more than the scheme.
  static Result<PinSource> Parse(std::string_view text);

  // Human-readable description without the secret ("environment variable KUBEHSM_PIN").
  std::string Describe() const;
};

// Makes this process non-dumpable (prctl PR_SET_DUMPABLE 0: no core file, no ptrace or
// /proc/PID/mem access by other processes of the same user) and sets RLIMIT_CORE to 0. Called by
// ReadPin before any PIN is read, and by long-running commands at start. kInternal if the kernel
// refuses.
Status ProtectProcessMemory();

// Reads the PIN from `source`, after ProtectProcessMemory(). An env: variable is wiped and
// removed from the environment once read (a second read of it fails). One trailing "\n" or "\r\n" is removed; an empty PIN is an error.
// Files larger than 1 KiB and world-readable PIN files are refused (kPermissionDenied for the
// latter). For kPrompt, reads from /dev/tty with echo off, printing `prompt` there.
Result<Pin> ReadPin(const PinSource& source, std::string_view prompt = "PKCS#11 token PIN: ");

}  // namespace kubehsm::hsm
