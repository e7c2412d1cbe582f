// Structured logs for the signer daemon: one logfmt line per event on a stream (stderr),
// `ts=<RFC 3339 UTC> level=<info|warn|error|debug> event=<name> key=value ...`. Values are quoted
// when they contain spaces, quotes or '='. Nothing secret is ever passed in (no PINs; token claims
// only at debug level, which the caller enables explicitly).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace kubehsm::service {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

class Logger final {
 public:
  using Field = std::pair<std::string_view, std::string>;

  // Writes to `out` (borrowed; must outlive the logger). Debug lines only when `debug` is true.
  Logger(std::ostream& out, bool debug) : out_(out), debug_(debug) {}
  Logger(const Logger&) = delete;  // serialises writes to one stream
  Logger& operator=(const Logger&) = delete;

  bool debug_enabled() const { return debug_; }

  // Writes one line atomically with respect to other threads.
  void Log(LogLevel level, std::string_view event, std::initializer_list<Field> fields = {});

 private:
  std::ostream& out_;
  bool debug_;
  std::mutex mu_;
};

// Formats a value for a logfmt line (quoted and escaped when needed).
std::string LogfmtValue(std::string_view value);

}  // namespace kubehsm::service
