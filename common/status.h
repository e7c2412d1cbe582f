// kubehsm's single error model: a Status (code + message) and Result<T> (a value or a Status).
// Errors from PKCS#11 (CK_RV) and OpenSSL (the error queue) are translated into a Status once, where
// they occur; the CLI turns a Status into an exit code and one line on stderr, the gRPC service into
// a grpc::Status.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace kubehsm {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // bad input from the user: flags, files, URIs, CSRs, claims
  kNotFound,            // module, token, key, file absent
  kAlreadyExists,       // e.g. a key label already used in the token
  kPermissionDenied,    // refused by policy, file modes, peer credentials
  kUnauthenticated,     // wrong PIN, token not logged in
  kFailedPrecondition,  // state does not allow the operation (locked token, wrong key type)
  kUnavailable,         // device error, token removed: retrying later may work
  kInternal,            // a library or invariant failed
};

// Returns the stable lower-case name of a code ("invalid argument", ...).
const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status final {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "<context>: <message>".
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
inline Status PermissionDenied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }
inline Status Unauthenticated(std::string m) { return {StatusCode::kUnauthenticated, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// A value of T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result final {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "Result constructed from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace kubehsm

#define KH_CONCAT_INNER_(a, b) a##b
#define KH_CONCAT_(a, b) KH_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` (a Status) is not OK.
#define KH_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::kubehsm::Status kh_status_ = (expr);   \
    if (!kh_status_.ok()) return kh_status_; \
  } while (0)

// `KH_ASSIGN_OR_RETURN(auto x, MakeX());` declares x from a Result or returns its status.
#define KH_ASSIGN_OR_RETURN(lhs, expr) KH_ASSIGN_OR_RETURN_IMPL_(KH_CONCAT_(kh_result_, __LINE__), lhs, expr)
#define KH_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
