#include "signer/pki/init_internal.h"

namespace kubehsm::signer::pki::internal {

Status WriteKubeconfigs(Runner&, bool) {
  return FailedPrecondition("the kubeconfig phase needs signer/pki/kubeconfig.h (not available yet)");
}

}  // namespace kubehsm::signer::pki::internal
