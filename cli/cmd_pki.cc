#include "cli/command.h"

namespace kubehsm::cli {

int RunPki(Context& ctx, const Args&) { return ctx.Fail(FailedPrecondition("'pki' is not available yet")); }

}  // namespace kubehsm::cli
