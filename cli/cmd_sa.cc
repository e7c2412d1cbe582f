#include "cli/command.h"

namespace kubehsm::cli {

int RunSa(Context& ctx, const Args&) { return ctx.Fail(FailedPrecondition("'sa' is not available yet")); }

}  // namespace kubehsm::cli
