// Translates OpenSSL's thread-local error queue into kubehsm's Status.
#pragma once

#include <string>

#include "common/status.h"

namespace kubehsm {

// Drains the calling thread's OpenSSL error queue and returns its reasons joined by "; "
// (library-internal file/line noise removed). Returns "no OpenSSL error queued" when empty.
std::string DrainOpenSslErrors();

// Returns Internal("<what>: <drained OpenSSL errors>").
Status OpenSslError(const std::string& what);

// Like OpenSslError, with a chosen code (e.g. kInvalidArgument for unparsable user input).
Status OpenSslError(StatusCode code, const std::string& what);

}  // namespace kubehsm
