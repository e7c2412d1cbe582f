#include "hsm/pin.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <openssl/crypto.h>

namespace kubehsm::hsm {
namespace {

constexpr std::size_t kMaxPinBytes = 1024;

// Reads all of `fd` (up to kMaxPinBytes + 1) into `out`, stopping at the first newline when
// `stop_at_newline` (fd/tty sources, so a pipe left open by the parent does not block forever).
Status ReadAll(int fd, std::vector<unsigned char>& out, bool stop_at_newline, const std::string& what) {
  unsigned char c = 0;
  for (;;) {
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Unavailable("cannot read PIN from " + what + ": " + std::strerror(errno));
    }
    if (n == 0) break;
    out.push_back(c);
    if (stop_at_newline && c == '\n') break;
    if (out.size() > kMaxPinBytes) return InvalidArgument("PIN from " + what + " is longer than 1024 bytes");
  }
  c = 0;
  return OkStatus();
}

Result<Pin> FinishPin(std::vector<unsigned char>& bytes, const std::string& what) {
  if (!bytes.empty() && bytes.back() == '\n') bytes.pop_back();
  if (!bytes.empty() && bytes.back() == '\r') bytes.pop_back();
  if (bytes.empty()) {
    return InvalidArgument("the PIN from " + what + " is empty");
  }
  Pin pin(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return pin;
}

// Wipes a vector's contents on scope exit.
class WipeOnExit final {
 public:
  explicit WipeOnExit(std::vector<unsigned char>& v) : v_(v) {}
  WipeOnExit(const WipeOnExit&) = delete;  // guards exactly one buffer
  WipeOnExit& operator=(const WipeOnExit&) = delete;
  ~WipeOnExit() {
    if (!v_.empty()) OPENSSL_cleanse(v_.data(), v_.size());
  }

 private:
  std::vector<unsigned char>& v_;
};

}  // namespace

Pin::Pin(std::string_view value) : bytes_(value.begin(), value.end()) {}

Pin::Pin(Pin&& other) noexcept : bytes_(std::move(other.bytes_)) { other.Wipe(); }

Pin& Pin::operator=(Pin&& other) noexcept {
  if (this != &other) {
    Wipe();
    bytes_ = std::move(other.bytes_);
    other.Wipe();
  }
  return *this;
}

Pin::~Pin() { Wipe(); }

void Pin::Wipe() {
  if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
  bytes_.clear();
}

Result<PinSource> PinSource::Parse(std::string_view text) {
  auto starts = [&](std::string_view p) { return text.substr(0, p.size()) == p; };
  PinSource s;
  if (text == "prompt" || text == "tty") {
    s.kind = Kind::kPrompt;
    return s;
  }
  if (starts("env:")) {
    s.kind = Kind::kEnv;
    s.where = std::string(text.substr(4));
    if (s.where.empty()) return InvalidArgument("pin source env: needs a variable name (env:VAR)");
    return s;
  }
  if (starts("file:")) {
    s.kind = Kind::kFile;
    s.where = std::string(text.substr(5));
    if (s.where.empty()) return InvalidArgument("pin source file: needs a path (file:PATH)");
    return s;
  }
  if (starts("fd:")) {
    s.kind = Kind::kFd;
    s.where = std::string(text.substr(3));
    int fd = -1;
    auto [p, ec] = std::from_chars(s.where.data(), s.where.data() + s.where.size(), fd);
    // Digits only: from_chars alone would also take a sign ("fd:-0").
    if (ec != std::errc() || p != s.where.data() + s.where.size() || fd < 0 || s.where[0] < '0' || s.where[0] > '9') {
      return InvalidArgument("pin source fd: needs a file descriptor number (fd:N)");
    }
    return s;
  }
  if (starts("/")) {  // RFC 7512 pin-source: a file path
    s.kind = Kind::kFile;
    s.where = std::string(text);
    return s;
  }
  if (starts("|")) return InvalidArgument("pin source commands ('|cmd') are not supported");
  return InvalidArgument("unknown pin source (expected env:VAR, file:PATH, fd:N or prompt)");
}

std::string PinSource::Describe() const {
  switch (kind) {
    case Kind::kEnv:
      return "environment variable " + where;
    case Kind::kFile:
      return "file " + where;
    case Kind::kFd:
      return "file descriptor " + where;
    case Kind::kPrompt:
      return "the terminal prompt";
  }
  return "?";
}

Status ProtectProcessMemory() {
  // prctl(2): a non-dumpable process writes no core file, and other processes of the same user
  // can neither ptrace it nor read /proc/PID/mem or /proc/PID/environ.
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    return Internal(std::string("prctl(PR_SET_DUMPABLE, 0): ") + std::strerror(errno));
  }
  const rlimit no_core{0, 0};
  if (::setrlimit(RLIMIT_CORE, &no_core) != 0) {
    return Internal(std::string("setrlimit(RLIMIT_CORE, 0): ") + std::strerror(errno));
  }
  return OkStatus();
}

Result<Pin> ReadPin(const PinSource& source, std::string_view prompt) {
  // Before the PIN is in memory, in every command that reads one.
  KH_RETURN_IF_ERROR(ProtectProcessMemory());
  std::vector<unsigned char> bytes;
  WipeOnExit wipe(bytes);
  const std::string what = source.Describe();
  switch (source.kind) {
    case PinSource::Kind::kEnv: {
      char* v = std::getenv(source.where.c_str());
      if (v == nullptr) return NotFound("PIN " + what + " is not set");
      const std::size_t len = std::strlen(v);
      bytes.assign(v, v + len);
      // Read once, then gone: wiped where it lies (the initial environment block is what
      // /proc/PID/environ shows) and removed, so no child process or library finds it.
      OPENSSL_cleanse(v, len);
      ::unsetenv(source.where.c_str());
      return FinishPin(bytes, what);
    }
    case PinSource::Kind::kFile: {
      int fd = ::open(source.where.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        int err = errno;
        return Status(err == ENOENT ? StatusCode::kNotFound : StatusCode::kPermissionDenied,
                      "cannot open PIN " + what + ": " + std::strerror(err));
      }
      struct stat st {};
      if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        return InvalidArgument("PIN " + what + " is not a regular file");
      }
      if ((st.st_mode & S_IROTH) != 0) {
        ::close(fd);
        return PermissionDenied("PIN " + what + " is world-readable; chmod o-rwx it");
      }
      Status s = ReadAll(fd, bytes, false, what);
      ::close(fd);
      KH_RETURN_IF_ERROR(s);
      return FinishPin(bytes, what);
    }
    case PinSource::Kind::kFd: {
      int fd = std::atoi(source.where.c_str());
      if (::fcntl(fd, F_GETFD) < 0) return NotFound("PIN " + what + " is not open");
      KH_RETURN_IF_ERROR(ReadAll(fd, bytes, true, what));
      return FinishPin(bytes, what);
    }
    case PinSource::Kind::kPrompt: {
      int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
      if (fd < 0) {
        return FailedPrecondition("no terminal to prompt for the PIN; use --pin-source env:VAR, file:PATH or fd:N");
      }
      termios old_t{};
      bool restore = false;
      if (::tcgetattr(fd, &old_t) == 0) {
        termios t = old_t;
        t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        t.c_lflag |= ECHONL;
        restore = ::tcsetattr(fd, TCSAFLUSH, &t) == 0;
      }
      [[maybe_unused]] ssize_t w = ::write(fd, prompt.data(), prompt.size());
      Status s = ReadAll(fd, bytes, true, what);
      if (restore) ::tcsetattr(fd, TCSAFLUSH, &old_t);
      ::close(fd);
      KH_RETURN_IF_ERROR(s);
      return FinishPin(bytes, what);
    }
  }
  return Internal("unknown pin source kind");
}

}  // namespace kubehsm::hsm
