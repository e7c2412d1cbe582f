#include "cli/command.h"

namespace kubehsm::cli {

int RunInit(Context& ctx, const Args&) { return ctx.Fail(FailedPrecondition("'init' is not available yet")); }

}  // namespace kubehsm::cli
