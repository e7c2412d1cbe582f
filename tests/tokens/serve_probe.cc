// kubehsm_serve_probe: checks a running `kubehsm serve` from outside, for the module e2e suite
// (tests/tokens/module_e2e). On both API versions (v1, v1alpha1): Metadata answers with the expected
// maximum expiration, FetchKeys lists exactly the expected kid, and a Sign of kube-apiserver-style
// claims assembles into a token that verifies with plain OpenSSL against the FetchKeys key; then
// PyJWT verifies both tokens (and refuses tamperings). Prints one line per check; exit 0 when every
// check passed, 1 otherwise, 2 on usage errors.
//
// usage: kubehsm_serve_probe SOCKET KID MAX_EXPIRATION_SECONDS WORK_DIR
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "tests/service/serve_test_util.h"

namespace {

constexpr char kIssuer[] = "https://kubernetes.default.svc.cluster.local";
constexpr char kAudience[] = "https://kubernetes.default.svc.cluster.local";

}  // namespace

int main(int argc, char** argv) {
  using kubehsm::testing::CallResult;
  if (argc != 5) {
    std::cerr << "usage: kubehsm_serve_probe SOCKET KID MAX_EXPIRATION_SECONDS WORK_DIR\n";
    return 2;
  }
  const std::string socket = argv[1], kid = argv[2];
  const long long max_exp = std::atoll(argv[3]);
  bool ok = true;
  auto check = [&ok](bool cond, const std::string& what, const std::string& detail) {
    std::cout << (cond ? "ok   " : "FAIL ") << what << (cond || detail.empty() ? "" : ": " + detail) << "\n";
    ok = ok && cond;
    return cond;
  };
  std::vector<std::string> tokens;
  std::vector<CallResult::Key> keys;
  for (const std::string api : {"v1", "v1alpha1"}) {
    kubehsm::testing::SignerClient client(socket, api);
    CallResult meta = client.Metadata();
    if (check(meta.code == grpc::StatusCode::OK, api + " Metadata", meta.message)) {
      check(meta.max_token_expiration_seconds == max_exp, api + " Metadata max expiration",
            std::to_string(meta.max_token_expiration_seconds));
    }
    CallResult fetched = client.FetchKeys();
    if (check(fetched.code == grpc::StatusCode::OK, api + " FetchKeys", fetched.message)) {
      bool listed = false;
      for (const auto& k : fetched.keys) listed = listed || k.kid == kid;
      check(listed, api + " FetchKeys lists the active kid", std::to_string(fetched.keys.size()) + " keys, none " + kid);
      keys = fetched.keys;
    }
    const std::string claims = kubehsm::testing::MakeClaims(kIssuer, kAudience);
    CallResult sig = client.Sign(claims, std::chrono::seconds(60));
    if (check(sig.code == grpc::StatusCode::OK, api + " Sign", kubehsm::testing::CodeName(sig.code) + " " + sig.message)) {
      const std::string token = sig.header + "." + claims + "." + sig.signature;
      check(kubehsm::testing::VerifyWithOpenSsl(token, keys).empty(), api + " Sign verifies with OpenSSL",
            kubehsm::testing::VerifyWithOpenSsl(token, keys));
      tokens.push_back(token);
    }
  }
  if (tokens.size() == 2 && !keys.empty()) {
    const std::string r = kubehsm::testing::VerifyWithPyJwt(tokens, keys, kIssuer, kAudience, argv[4]);
    check(r.empty(), "both tokens verify with PyJWT (tamperings refused)", r);
  } else {
    check(false, "PyJWT verification", "no tokens to verify");
  }
  return ok ? 0 : 1;
}
