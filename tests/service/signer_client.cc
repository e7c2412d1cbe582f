// kubehsm_signer_client: one ExternalJWTSigner call from a separate process, so the e2e tests can
// call the signer as another user (setpriv --reuid ...). Prints "<CODE> <detail>" and exits 0 when
// the call returned OK, 3 otherwise.
//
// usage: kubehsm_signer_client SOCKET v1|v1alpha1 Sign|FetchKeys|Metadata [CLAIMS]
#include <iostream>
#include <string>

#include "tests/service/serve_test_util.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: kubehsm_signer_client SOCKET v1|v1alpha1 Sign|FetchKeys|Metadata [CLAIMS]\n";
    return 2;
  }
  kubehsm::testing::SignerClient client(argv[1], argv[2]);
  const std::string method = argv[3];
  kubehsm::testing::CallResult r;
  std::string detail;
  if (method == "Sign") {
    r = client.Sign(argc > 4 ? argv[4] : "");
    detail = r.header;
  } else if (method == "FetchKeys") {
    r = client.FetchKeys();
    detail = std::to_string(r.keys.size()) + " keys";
  } else if (method == "Metadata") {
    r = client.Metadata();
    detail = std::to_string(r.max_token_expiration_seconds);
  } else {
    std::cerr << "unknown method " << method << "\n";
    return 2;
  }
  std::cout << kubehsm::testing::CodeName(r.code) << " " << (r.code == grpc::StatusCode::OK ? detail : r.message)
            << "\n";
  return r.code == grpc::StatusCode::OK ? 0 : 3;
}
