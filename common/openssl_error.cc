#include "common/openssl_error.h"

#include <openssl/err.h>

namespace kubehsm {

std::string DrainOpenSslErrors() {
  std::string out;
  unsigned long e = 0;
  while ((e = ERR_get_error()) != 0) {
    const char* reason = ERR_reason_error_string(e);
    std::string text = reason != nullptr ? reason : "error 0x" + std::to_string(e);
    if (out.find(text) != std::string::npos) continue;  // OpenSSL often repeats a reason
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out.empty() ? "no OpenSSL error queued" : out;
}

Status OpenSslError(const std::string& what) { return OpenSslError(StatusCode::kInternal, what); }

Status OpenSslError(StatusCode code, const std::string& what) {
  return Status(code, what + ": " + DrainOpenSslErrors());
}

}  // namespace kubehsm
