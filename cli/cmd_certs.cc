#include "cli/command.h"

namespace kubehsm::cli {

int RunCerts(Context& ctx, const Args&) { return ctx.Fail(FailedPrecondition("'certs' is not available yet")); }

}  // namespace kubehsm::cli
