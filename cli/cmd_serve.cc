#include "cli/command.h"

namespace kubehsm::cli {

int RunServe(Context& ctx, const Args&) { return ctx.Fail(FailedPrecondition("'serve' is not available yet")); }

}  // namespace kubehsm::cli
