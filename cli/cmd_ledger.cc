#include "cli/command.h"

namespace kubehsm::cli {

int RunLedger(Context& ctx, const Args&) { return ctx.Fail(FailedPrecondition("'ledger' is not available yet")); }
int RunAudit(Context& ctx, const Args&) { return ctx.Fail(FailedPrecondition("'audit' is not available yet")); }

}  // namespace kubehsm::cli
