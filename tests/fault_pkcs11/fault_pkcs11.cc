// libkubehsm_fault_pkcs11.so: a PKCS#11 2.40 module that forwards every call to a real module and
// fails chosen calls on demand, so tests can see how kubehsm (CLI, hsm layer, signing daemon)
// behaves when a token errs, disappears or loses its login.
//
// LOADING
//   Only C_GetFunctionList is exported. Its first call dlopens the real module named by
//   $KUBEHSM_FAULT_REAL_MODULE (default /usr/lib/softhsm/libsofthsm2.so), once per process. The
//   control file path $KUBEHSM_FAULT_CONTROL is read then and again after every C_Initialize that
//   returns CKR_OK (so in-process tests may point each module lifetime at their own file). If the
//   real module cannot be loaded, C_GetFunctionList prints one line on stderr and returns
//   CKR_GENERAL_ERROR.
//   The list it returns carries the real module's version; every entry forwards to the real one.
//
// CONTROL FILE ($KUBEHSM_FAULT_CONTROL)
//   No variable, no file or an empty file: no faults, pure pass-through. Otherwise one directive
//   per line; blank lines and lines starting with '#' are ignored, spaces around tokens too.
//
//     C_Sign=CKR_DEVICE_ERROR       every C_Sign returns CKR_DEVICE_ERROR
//     C_SignInit=0x30               the value is a CKR_* name, hex (0x30) or decimal (48)
//     C_GenerateKeyPair=CKR_DEVICE_ERROR:2
//                                   only the next 2 calls fail, later ones are forwarded
//     *=CKR_DEVICE_REMOVED          every function except C_Initialize, C_Finalize and C_GetInfo
//                                   (those fail only when named) and C_GetFunctionList (never);
//                                   a line naming a function wins over '*'
//     C_GetTokenInfo=CKR_TOKEN_NOT_PRESENT
//                                   "token removed": kubehsm then finds no token / reports unhealthy
//     logout=1                      the next call that takes a session handle first calls the real
//                                   C_Logout on that session (the token "lost" the login; PKCS#11
//                                   login state is per application, so every session is logged
//                                   out), then the directive is spent
//
//   A faulted call returns the injected value and never touches the caller's buffers. When the
//   function continues or ends a cryptographic operation (C_Sign, C_SignUpdate, C_SignFinal and the
//   encrypt, decrypt, digest and verify families), the shim also ends that operation in the real
//   module, discarding the outcome, because PKCS#11 2.40 §5.11 says "A call to C_Sign always
//   terminates the active signing operation unless it returns CKR_BUFFER_TOO_SMALL or is a
//   successful call (i.e., one which returns CKR_OK) to determine the length of the buffer
//   needed" (likewise for the other families). Single-part and Final calls are repeated against the
//   real module with a scratch output buffer; Update calls are followed by the family's C_*Final.
//   So a session that saw an injected C_Sign failure can be reused, as with a real device.
//   C_SignRecover/C_VerifyRecover get no such clean-up (kubehsm uses neither).
//   A line the shim cannot parse is reported once per parse on stderr
//   ("kubehsm-fault-pkcs11: <file>:<line>: ...; line ignored") so a typo never passes silently.
//
// RE-READING
//   Every call stat()s the file. A change of inode, size or mtime re-parses it, which re-arms :N
//   counts and logout=1; while the file's mtime is within 2 s of the last check the content is
//   compared too (same-size rewrites inside one timestamp tick), as git does for "racy" index
//   entries. Counts and the spent logout live in the process that loaded the shim: a new process
//   starts from the file as written. Replace the file atomically (write a temp file, rename() it
//   over the path) so a reader never sees half a file; deleting the file turns all faults off.
//
// THREADS
//   All entry points may be called from many threads. Process-wide state is exactly what a module
//   needs: one function table (the CK_FUNCTION_LIST handed out, constant after it is built) and one
//   control state (rules, counts, file identity) behind one mutex, because every thread must see
//   the same :N budget. Both live in one heap object that is never destroyed, and the library is
//   linked with -z nodelete, so a caller that runs after static destructors or after dlclose
//   (OpenSSL's atexit clean-up in pkcs11-provider, spec §1 pitfalls) still finds a live table. The
//   real module stays loaded for the same reason. No C++ exception crosses the C ABI.

#include <dlfcn.h>
#include <fcntl.h>
#include <p11-kit/pkcs11.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#ifndef KUBEHSM_DEFAULT_MODULE
#define KUBEHSM_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#endif

namespace kubehsm::fault_pkcs11 {
namespace {

// How a faulted call ends the operation it would have continued (PKCS#11 2.40 §5.8-§5.13: an
// error ends it). A bit mask of the families whose C_*Final must run, or kSelf: a single-part or Final call,
// which is repeated against the real module with a scratch output buffer (SoftHSM refuses C_*Final
// for single-part mechanisms such as CKM_ECDSA, and a repeated call ends both kinds).
enum End : unsigned {
  kNone = 0,
  kEncrypt = 1,
  kDecrypt = 2,
  kDigest = 4,
  kSign = 8,
  kVerify = 16,
  kSelf = 32,
};

// Every CK_FUNCTION_LIST entry in struct order: X(name, takes a session handle first, End).
#define KH_FAULT_FUNCTIONS(X)                        \
  X(C_Initialize, false, kNone)                      \
  X(C_Finalize, false, kNone)                        \
  X(C_GetInfo, false, kNone)                         \
  X(C_GetFunctionList, false, kNone)                 \
  X(C_GetSlotList, false, kNone)                     \
  X(C_GetSlotInfo, false, kNone)                     \
  X(C_GetTokenInfo, false, kNone)                    \
  X(C_GetMechanismList, false, kNone)                \
  X(C_GetMechanismInfo, false, kNone)                \
  X(C_InitToken, false, kNone)                       \
  X(C_InitPIN, true, kNone)                          \
  X(C_SetPIN, true, kNone)                           \
  X(C_OpenSession, false, kNone)                     \
  X(C_CloseSession, true, kNone)                     \
  X(C_CloseAllSessions, false, kNone)                \
  X(C_GetSessionInfo, true, kNone)                   \
  X(C_GetOperationState, true, kNone)                \
  X(C_SetOperationState, true, kNone)                \
  X(C_Login, true, kNone)                            \
  X(C_Logout, true, kNone)                           \
  X(C_CreateObject, true, kNone)                     \
  X(C_CopyObject, true, kNone)                       \
  X(C_DestroyObject, true, kNone)                    \
  X(C_GetObjectSize, true, kNone)                    \
  X(C_GetAttributeValue, true, kNone)                \
  X(C_SetAttributeValue, true, kNone)                \
  X(C_FindObjectsInit, true, kNone)                  \
  X(C_FindObjects, true, kNone)                      \
  X(C_FindObjectsFinal, true, kNone)                 \
  X(C_EncryptInit, true, kNone)                      \
  X(C_Encrypt, true, kSelf)                          \
  X(C_EncryptUpdate, true, kEncrypt)                 \
  X(C_EncryptFinal, true, kSelf)                     \
  X(C_DecryptInit, true, kNone)                      \
  X(C_Decrypt, true, kSelf)                          \
  X(C_DecryptUpdate, true, kDecrypt)                 \
  X(C_DecryptFinal, true, kSelf)                     \
  X(C_DigestInit, true, kNone)                       \
  X(C_Digest, true, kSelf)                           \
  X(C_DigestUpdate, true, kDigest)                   \
  X(C_DigestKey, true, kDigest)                      \
  X(C_DigestFinal, true, kSelf)                      \
  X(C_SignInit, true, kNone)                         \
  X(C_Sign, true, kSelf)                             \
  X(C_SignUpdate, true, kSign)                       \
  X(C_SignFinal, true, kSelf)                        \
  X(C_SignRecoverInit, true, kNone)                  \
  X(C_SignRecover, true, kNone)                      \
  X(C_VerifyInit, true, kNone)                       \
  X(C_Verify, true, kSelf)                           \
  X(C_VerifyUpdate, true, kVerify)                   \
  X(C_VerifyFinal, true, kSelf)                      \
  X(C_VerifyRecoverInit, true, kNone)                \
  X(C_VerifyRecover, true, kNone)                    \
  X(C_DigestEncryptUpdate, true, kDigest | kEncrypt) \
  X(C_DecryptDigestUpdate, true, kDecrypt | kDigest) \
  X(C_SignEncryptUpdate, true, kSign | kEncrypt)     \
  X(C_DecryptVerifyUpdate, true, kDecrypt | kVerify) \
  X(C_GenerateKey, true, kNone)                      \
  X(C_GenerateKeyPair, true, kNone)                  \
  X(C_WrapKey, true, kNone)                          \
  X(C_UnwrapKey, true, kNone)                        \
  X(C_DeriveKey, true, kNone)                        \
  X(C_SeedRandom, true, kNone)                       \
  X(C_GenerateRandom, true, kNone)                   \
  X(C_GetFunctionStatus, true, kNone)                \
  X(C_CancelFunction, true, kNone)                   \
  X(C_WaitForSlotEvent, false, kNone)

enum class Fn : std::size_t {
#define KH_ENUM(name, session, families) k##name,
  KH_FAULT_FUNCTIONS(KH_ENUM)
#undef KH_ENUM
      kCount
};
constexpr std::size_t kFnCount = static_cast<std::size_t>(Fn::kCount);

constexpr std::array<std::string_view, kFnCount> kFnNames = {
#define KH_NAME(name, session, families) #name,
    KH_FAULT_FUNCTIONS(KH_NAME)
#undef KH_NAME
};

// Functions a '*' line leaves alone, so the module can still be initialized and torn down.
constexpr bool ExemptFromWildcard(Fn f) {
  return f == Fn::kC_Initialize || f == Fn::kC_Finalize || f == Fn::kC_GetInfo || f == Fn::kC_GetFunctionList;
}

struct RvName {
  CK_RV rv;
  std::string_view name;
};
#define KH_RV(x) \
  { x, #x }
constexpr RvName kRvNames[] = {
    KH_RV(CKR_OK),
    KH_RV(CKR_CANCEL),
    KH_RV(CKR_HOST_MEMORY),
    KH_RV(CKR_SLOT_ID_INVALID),
    KH_RV(CKR_GENERAL_ERROR),
    KH_RV(CKR_FUNCTION_FAILED),
    KH_RV(CKR_ARGUMENTS_BAD),
    KH_RV(CKR_NO_EVENT),
    KH_RV(CKR_NEED_TO_CREATE_THREADS),
    KH_RV(CKR_CANT_LOCK),
    KH_RV(CKR_ATTRIBUTE_READ_ONLY),
    KH_RV(CKR_ATTRIBUTE_SENSITIVE),
    KH_RV(CKR_ATTRIBUTE_TYPE_INVALID),
    KH_RV(CKR_ATTRIBUTE_VALUE_INVALID),
    KH_RV(CKR_ACTION_PROHIBITED),
    KH_RV(CKR_DATA_INVALID),
    KH_RV(CKR_DATA_LEN_RANGE),
    KH_RV(CKR_DEVICE_ERROR),
    KH_RV(CKR_DEVICE_MEMORY),
    KH_RV(CKR_DEVICE_REMOVED),
    KH_RV(CKR_ENCRYPTED_DATA_INVALID),
    KH_RV(CKR_ENCRYPTED_DATA_LEN_RANGE),
    KH_RV(CKR_FUNCTION_CANCELED),
    KH_RV(CKR_FUNCTION_NOT_PARALLEL),
    KH_RV(CKR_FUNCTION_NOT_SUPPORTED),
    KH_RV(CKR_KEY_HANDLE_INVALID),
    KH_RV(CKR_KEY_SIZE_RANGE),
    KH_RV(CKR_KEY_TYPE_INCONSISTENT),
    KH_RV(CKR_KEY_NOT_NEEDED),
    KH_RV(CKR_KEY_CHANGED),
    KH_RV(CKR_KEY_NEEDED),
    KH_RV(CKR_KEY_INDIGESTIBLE),
    KH_RV(CKR_KEY_FUNCTION_NOT_PERMITTED),
    KH_RV(CKR_KEY_NOT_WRAPPABLE),
    KH_RV(CKR_KEY_UNEXTRACTABLE),
    KH_RV(CKR_MECHANISM_INVALID),
    KH_RV(CKR_MECHANISM_PARAM_INVALID),
    KH_RV(CKR_OBJECT_HANDLE_INVALID),
    KH_RV(CKR_OPERATION_ACTIVE),
    KH_RV(CKR_OPERATION_NOT_INITIALIZED),
    KH_RV(CKR_PIN_INCORRECT),
    KH_RV(CKR_PIN_INVALID),
    KH_RV(CKR_PIN_LEN_RANGE),
    KH_RV(CKR_PIN_EXPIRED),
    KH_RV(CKR_PIN_LOCKED),
    KH_RV(CKR_SESSION_CLOSED),
    KH_RV(CKR_SESSION_COUNT),
    KH_RV(CKR_SESSION_HANDLE_INVALID),
    KH_RV(CKR_SESSION_PARALLEL_NOT_SUPPORTED),
    KH_RV(CKR_SESSION_READ_ONLY),
    KH_RV(CKR_SESSION_EXISTS),
    KH_RV(CKR_SESSION_READ_ONLY_EXISTS),
    KH_RV(CKR_SESSION_READ_WRITE_SO_EXISTS),
    KH_RV(CKR_SIGNATURE_INVALID),
    KH_RV(CKR_SIGNATURE_LEN_RANGE),
    KH_RV(CKR_TEMPLATE_INCOMPLETE),
    KH_RV(CKR_TEMPLATE_INCONSISTENT),
    KH_RV(CKR_TOKEN_NOT_PRESENT),
    KH_RV(CKR_TOKEN_NOT_RECOGNIZED),
    KH_RV(CKR_TOKEN_WRITE_PROTECTED),
    KH_RV(CKR_UNWRAPPING_KEY_SIZE_RANGE),
    KH_RV(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT),
    KH_RV(CKR_USER_ALREADY_LOGGED_IN),
    KH_RV(CKR_USER_NOT_LOGGED_IN),
    KH_RV(CKR_USER_PIN_NOT_INITIALIZED),
    KH_RV(CKR_USER_TYPE_INVALID),
    KH_RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
    KH_RV(CKR_USER_TOO_MANY_TYPES),
    KH_RV(CKR_WRAPPED_KEY_INVALID),
    KH_RV(CKR_WRAPPED_KEY_LEN_RANGE),
    KH_RV(CKR_WRAPPING_KEY_HANDLE_INVALID),
    KH_RV(CKR_WRAPPING_KEY_SIZE_RANGE),
    KH_RV(CKR_WRAPPING_KEY_TYPE_INCONSISTENT),
    KH_RV(CKR_RANDOM_SEED_NOT_SUPPORTED),
    KH_RV(CKR_RANDOM_NO_RNG),
    KH_RV(CKR_DOMAIN_PARAMS_INVALID),
    KH_RV(CKR_CURVE_NOT_SUPPORTED),
    KH_RV(CKR_BUFFER_TOO_SMALL),
    KH_RV(CKR_SAVED_STATE_INVALID),
    KH_RV(CKR_INFORMATION_SENSITIVE),
    KH_RV(CKR_STATE_UNSAVEABLE),
    KH_RV(CKR_CRYPTOKI_NOT_INITIALIZED),
    KH_RV(CKR_CRYPTOKI_ALREADY_INITIALIZED),
    KH_RV(CKR_MUTEX_BAD),
    KH_RV(CKR_MUTEX_NOT_LOCKED),
    KH_RV(CKR_NEW_PIN_MODE),
    KH_RV(CKR_NEXT_OTP),
    KH_RV(CKR_EXCEEDED_MAX_ITERATIONS),
    KH_RV(CKR_FIPS_SELF_TEST_FAILED),
    KH_RV(CKR_LIBRARY_LOAD_FAILED),
    KH_RV(CKR_PIN_TOO_WEAK),
    KH_RV(CKR_PUBLIC_KEY_INVALID),
    KH_RV(CKR_FUNCTION_REJECTED),
    KH_RV(CKR_VENDOR_DEFINED),
};
#undef KH_RV

constexpr std::string_view kTag = "kubehsm-fault-pkcs11: ";

void Warn(const std::string& line) {
  const std::string msg = std::string(kTag) + line + "\n";
  // One write(2) so lines from concurrent threads do not interleave.
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, msg.data(), msg.size());
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::optional<unsigned long> ParseNumber(std::string_view s) {
  if (s.empty()) return std::nullopt;
  const std::string text(s);
  const bool hex = text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
  char* end = nullptr;
  errno = 0;
  const unsigned long v = std::strtoul(text.c_str(), &end, hex ? 16 : 10);
  if (errno != 0 || end != text.c_str() + text.size() || text[0] == '-' || text[0] == '+') return std::nullopt;
  return v;
}

std::optional<CK_RV> ParseRv(std::string_view s) {
  for (const RvName& e : kRvNames) {
    if (e.name == s) return e.rv;
  }
  return ParseNumber(s);
}

// One "fail this function" directive; `remaining` empty means every call.
struct Rule {
  CK_RV rv = CKR_OK;
  std::optional<unsigned long> remaining;
};

struct Rules {
  std::array<std::optional<Rule>, kFnCount> by_function;
  std::optional<Rule> wildcard;
  bool logout = false;
};

// Parses the control file text; malformed lines are reported on stderr and ignored.
Rules ParseRules(const std::string& path, const std::string& text) {
  Rules rules;
  std::size_t line_no = 0;
  std::string_view rest(text);
  while (!rest.empty()) {
    const std::size_t nl = rest.find('\n');
    std::string_view line = Trim(rest.substr(0, nl));
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    ++line_no;
    if (line.empty() || line.front() == '#') continue;
    auto bad = [&](const std::string& why) {
      Warn(path + ":" + std::to_string(line_no) + ": " + why + "; line ignored");
    };
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      bad("expected FUNCTION=CKR_VALUE[:COUNT], got '" + std::string(line) + "'");
      continue;
    }
    const std::string_view key = Trim(line.substr(0, eq));
    std::string_view value = Trim(line.substr(eq + 1));
    if (key == "logout") {
      if (value == "1")
        rules.logout = true;
      else if (value != "0")
        bad("logout takes 1 or 0, got '" + std::string(value) + "'");
      continue;
    }
    Rule rule;
    if (const std::size_t colon = value.find(':'); colon != std::string_view::npos) {
      auto count = ParseNumber(Trim(value.substr(colon + 1)));
      if (!count) {
        bad("bad call count '" + std::string(value.substr(colon + 1)) + "'");
        continue;
      }
      rule.remaining = *count;
      value = Trim(value.substr(0, colon));
    }
    auto rv = ParseRv(value);
    if (!rv) {
      bad("unknown return value '" + std::string(value) + "' (a CKR_* name, 0x hex or decimal)");
      continue;
    }
    rule.rv = *rv;
    if (key == "C_GetFunctionList") {
      bad("C_GetFunctionList cannot be faulted");
      continue;
    }
    if (key == "*") {
      rules.wildcard = rule;
      continue;
    }
    bool found = false;
    for (std::size_t i = 0; i < kFnCount; ++i) {
      if (kFnNames[i] == key) {
        rules.by_function[i] = rule;
        found = true;
        break;
      }
    }
    if (!found) bad("unknown function '" + std::string(key) + "'");
  }
  return rules;
}

// What the shim does for one call, decided under the control mutex.
struct Decision {
  std::optional<CK_RV> fault;
  bool logout_first = false;
};

// The control file's parsed rules and the identity of the version they came from.
class Control final {
 public:
  // Follows the file at `path` (nullptr or "": no faults). A different path starts from scratch.
  void SetPath(const char* path) noexcept {
    try {
      std::lock_guard lock(mu_);
      const std::string p = path != nullptr ? path : "";
      if (p == path_) return;
      path_ = p;
      identity_ = Identity{};
      checked_at_ = timespec{};
      text_.clear();
      rules_ = Rules{};
    } catch (...) {
    }
  }

  Decision Decide(Fn fn, bool takes_session) noexcept {
    Decision d;
    try {
      std::lock_guard lock(mu_);
      if (path_.empty()) return d;
      Refresh();
      auto& specific = rules_.by_function[static_cast<std::size_t>(fn)];
      std::optional<Rule>* rule = nullptr;
      if (specific)
        rule = &specific;
      else if (rules_.wildcard && !ExemptFromWildcard(fn))
        rule = &rules_.wildcard;
      if (rule != nullptr && (!(*rule)->remaining || *(*rule)->remaining > 0)) {
        d.fault = (*rule)->rv;
        if ((*rule)->remaining) --*(*rule)->remaining;
      }
      if (rules_.logout && takes_session) {
        rules_.logout = false;
        d.logout_first = true;
      }
    } catch (...) {
      // Allocation failure while re-reading: behave like a device that cannot answer.
      d.fault = CKR_HOST_MEMORY;
    }
    return d;
  }

 private:
  struct Identity {
    bool exists = false;
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    timespec mtime{};
    bool operator==(const Identity& o) const {
      return exists == o.exists && dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
             mtime.tv_nsec == o.mtime.tv_nsec;
    }
  };

  static timespec Now() {
    timespec t{};
    ::clock_gettime(CLOCK_REALTIME, &t);
    return t;
  }

  // The file's mtime is so close to our last look that a same-size rewrite in the same timestamp
  // tick would be invisible to stat (2 s covers coarse filesystem clocks).
  bool Racy() const { return identity_.exists && checked_at_.tv_sec <= identity_.mtime.tv_sec + 2; }

  static std::optional<std::string> ReadAll(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    std::string out;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
  }

  // Re-parses the file when it changed since the last call. Caller holds mu_.
  void Refresh() {
    struct stat st {};
    Identity now_id;
    if (::stat(path_.c_str(), &st) == 0) {
      now_id = {true, st.st_dev, st.st_ino, st.st_size, st.st_mtim};
    }
    if (now_id == identity_ && !Racy()) return;
    std::string text;
    if (now_id.exists) {
      auto read = ReadAll(path_);
      if (!read)
        now_id = Identity{};  // removed between stat and open
      else
        text = std::move(*read);
    }
    const timespec now = Now();
    if (now_id == identity_ && text == text_) {
      checked_at_ = now;  // same version: keep counts and the spent logout
      return;
    }
    identity_ = now_id;
    checked_at_ = now;
    text_ = std::move(text);
    rules_ = ParseRules(path_, text_);
  }

  std::mutex mu_;
  std::string path_;
  Identity identity_;
  timespec checked_at_{};
  std::string text_;
  Rules rules_;
};

// The one process-wide instance: the real module, the table handed to callers and the control
// state. Created by the first C_GetFunctionList and never destroyed (see THREADS above).
struct Shim {
  void* handle = nullptr;
  CK_FUNCTION_LIST* real = nullptr;
  CK_FUNCTION_LIST list{};
  Control control;
};

std::atomic<Shim*> g_shim{nullptr};  // published once by LoadOnce, never changed afterwards
std::once_flag g_load_once;

// Ends the `families` operations still active on `session` in the real module (results ignored:
// any outcome leaves no operation behind). Two calls: a length query, then the real finish.
void EndFamilies(CK_FUNCTION_LIST* real, CK_SESSION_HANDLE session, unsigned families) noexcept {
  auto finish = [&](CK_RV (*final_fn)(CK_SESSION_HANDLE, unsigned char*, unsigned long*)) {
    unsigned long len = 0;
    CK_RV rv = final_fn(session, nullptr, &len);
    if (rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL) return;
    try {
      std::vector<unsigned char> buf(len + 1);
      len = buf.size();
      final_fn(session, buf.data(), &len);
    } catch (...) {
    }
  };
  if ((families & kEncrypt) != 0) finish(real->C_EncryptFinal);
  if ((families & kDecrypt) != 0) finish(real->C_DecryptFinal);
  if ((families & kDigest) != 0) finish(real->C_DigestFinal);
  if ((families & kSign) != 0) finish(real->C_SignFinal);
  if ((families & kVerify) != 0) {
    unsigned char bogus[1] = {0};  // any signature: the call ends the operation either way
    real->C_VerifyFinal(session, bogus, sizeof(bogus));
  }
}

// Forward<decltype(&CK_FUNCTION_LIST::C_x), &CK_FUNCTION_LIST::C_x>::Call<...> has exactly the
// signature of C_x, asks the control state, then fails or forwards.
template <typename MemberPtr, MemberPtr kMember>
struct Forward;

template <typename... Args, CK_RV (*CK_FUNCTION_LIST::*kMember)(Args...)>
struct Forward<CK_RV (*CK_FUNCTION_LIST::*)(Args...), kMember> {
  // Runs this call against the real module with the caller's inputs but a scratch output buffer
  // (a length query first, as the caller's buffer is never touched), so the operation ends.
  static void RepeatWithScratchOutput(CK_FUNCTION_LIST* real, Args... args) noexcept {
    constexpr std::size_t n = sizeof...(Args);
    std::tuple<Args...> call(args...);
    if constexpr (n >= 2 && std::is_same_v<std::tuple_element_t<n - 2, std::tuple<Args...>>, unsigned char*> &&
                  std::is_same_v<std::tuple_element_t<n - 1, std::tuple<Args...>>, unsigned long*>) {
      unsigned long len = 0;
      std::get<n - 2>(call) = nullptr;
      std::get<n - 1>(call) = &len;
      const CK_RV rv = std::apply(real->*kMember, call);
      if (rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL) return;
      try {
        std::vector<unsigned char> scratch(len + 1);
        len = scratch.size();
        std::get<n - 2>(call) = scratch.data();
        std::apply(real->*kMember, call);
      } catch (...) {
      }
    } else {
      std::apply(real->*kMember, call);  // C_Verify, C_VerifyFinal: inputs only
    }
  }

  template <Fn kFn, bool kTakesSession, unsigned kEnd>
  static CK_RV Call(Args... args) noexcept {
    Shim& shim = *g_shim.load(std::memory_order_acquire);  // set before the table was handed out
    const Decision d = shim.control.Decide(kFn, kTakesSession);
    if constexpr (kTakesSession) {
      const CK_SESSION_HANDLE session = std::get<0>(std::forward_as_tuple(args...));
      if (d.logout_first) shim.real->C_Logout(session);
      if (d.fault) {
        if constexpr (kEnd == kSelf)
          RepeatWithScratchOutput(shim.real, args...);
        else if constexpr (kEnd != kNone)
          EndFamilies(shim.real, session, kEnd);
        return *d.fault;
      }
    } else {
      if (d.fault) return *d.fault;
    }
    const CK_RV rv = (shim.real->*kMember)(args...);
    if constexpr (kFn == Fn::kC_Initialize) {
      // A fresh initialization may come from a new test in the same process: follow its file.
      if (rv == CKR_OK) shim.control.SetPath(std::getenv("KUBEHSM_FAULT_CONTROL"));
    }
    return rv;
  }
};

CK_RV LoadOnce() noexcept {
  std::call_once(g_load_once, [] {
    const char* env = std::getenv("KUBEHSM_FAULT_REAL_MODULE");
    const std::string path = env != nullptr && *env != '\0' ? env : KUBEHSM_DEFAULT_MODULE;
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* e = ::dlerror();
      Warn("cannot load the real PKCS#11 module " + path + ": " + (e != nullptr ? e : "dlopen failed"));
      return;
    }
    auto get_list = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(handle, "C_GetFunctionList"));
    CK_FUNCTION_LIST* real = nullptr;
    if (get_list == nullptr || get_list(&real) != CKR_OK || real == nullptr) {
      Warn(path + " is not a PKCS#11 module (C_GetFunctionList missing or failing)");
      ::dlclose(handle);
      return;
    }
    auto* shim = new Shim;  // never deleted: see THREADS in the header comment
    shim->handle = handle;
    shim->real = real;
    shim->list.version = real->version;
#define KH_FILL(name, session, families)                        \
  shim->list.name = &Forward<decltype(&CK_FUNCTION_LIST::name), \
                             &CK_FUNCTION_LIST::name>::template Call<Fn::k##name, session, families>;
    KH_FAULT_FUNCTIONS(KH_FILL)
#undef KH_FILL
    shim->list.C_GetFunctionList = &::C_GetFunctionList;
    shim->control.SetPath(std::getenv("KUBEHSM_FAULT_CONTROL"));
    g_shim.store(shim, std::memory_order_release);
  });
  return g_shim.load(std::memory_order_acquire) != nullptr ? CKR_OK : CKR_GENERAL_ERROR;
}

}  // namespace
}  // namespace kubehsm::fault_pkcs11

// PKCS#11 2.40 §5.4: "C_GetFunctionList obtains a pointer to the Cryptoki library's list of
// function pointers." The only symbol this library exports.
extern "C" __attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  if (list == nullptr) return CKR_ARGUMENTS_BAD;
  const CK_RV rv = kubehsm::fault_pkcs11::LoadOnce();
  if (rv != CKR_OK) return rv;
  *list = &kubehsm::fault_pkcs11::g_shim.load(std::memory_order_acquire)->list;
  return CKR_OK;
}
