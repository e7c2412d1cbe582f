// End-to-end tests of `kubehsm serve` (issue 6): the real daemon on a fresh SoftHSM token, a real
// gRPC client over the Unix socket on both API versions, and every token assembled as
// kube-apiserver does (header "." claims "." signature) and verified independently (plain OpenSSL
// and PyJWT against keys from FetchKeys).
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "common/base64.h"
#include "tests/service/serve_test_util.h"
#include "tests/support/test_env.h"

namespace kubehsm::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr const char* kIssuer = "https://kubernetes.default.svc.cluster.local";
constexpr const char* kAudience = "https://kubernetes.default.svc.cluster.local";
constexpr uid_t kNobody = 65534;

std::string Assemble(const std::string& claims, const CallResult& r) { return r.header + "." + claims + "." + r.signature; }

// GET /metrics over a Unix socket; the whole HTTP response.
std::string ScrapeMetrics(const fs::path& socket) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket.c_str());
  std::string out;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string req = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return out;
}

// Open descriptors of process `pid` (-1 if it cannot be read).
int CountFds(pid_t pid) {
  std::error_code ec;
  int n = 0;
  for (fs::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end; !ec && it != end; it.increment(ec)) ++n;
  return ec ? -1 : n;
}

// tests/service/hold_connections.py: COUNT connections held HOLD seconds, as `as_nobody` or root.
ProcessResult HoldConnections(const std::string& socket, int count, double hold_seconds, bool as_nobody) {
  std::vector<std::string> argv = {"/usr/bin/python3", (SourceDir() / "tests/service/hold_connections.py").string(),
                                   socket, std::to_string(count), std::to_string(hold_seconds)};
  if (as_nobody) argv.insert(argv.begin(), {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  return RunProcess(argv);
}

// "key=N" from hold_connections.py's report line; -1 when absent.
int ReportValue(const std::string& report, const std::string& key) {
  const auto pos = report.find(key + "=");
  if (pos == std::string::npos) return -1;
  return std::atoi(report.c_str() + pos + key.size() + 1);
}

// Base64url of a JSON text (claims as a hand-written string, e.g. with a duplicate member).
std::string B64(const std::string& json) { return Base64UrlEncode(json); }

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Bound-token claims as kube-apiserver sends them, with `iat`, `exp` and extra members spliced in.
std::string ClaimsJson(int64_t iat, int64_t exp, const std::string& extra_k8s = "", const std::string& extra = "") {
  const std::string t = std::to_string(iat);
  return R"({"aud":["https://kubernetes.default.svc.cluster.local"],"exp":)" + std::to_string(exp) + R"(,"iat":)" +
         t + R"(,"iss":"https://kubernetes.default.svc.cluster.local","jti":"2b7d4bd0-7b8e-4c5a-9f3e-0e1d2c3b4a59",)" +
         R"("kubernetes.io":{"namespace":"default",)" + extra_k8s +
         R"("pod":{"name":"web-0","uid":"0b6f5a2e-1d1c-4f0e-9a57-3c2d1e0f9a8b"},)" +
         R"("serviceaccount":{"name":"default","uid":"6a1f7c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b"}},"nbf":)" + t + extra +
         R"(,"sub":"system:serviceaccount:default:default"})";
}

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    token_ = std::make_unique<SoftHsmToken>("serve-e2e");
    token_->WriteKubehsmConfig();
    env_ = token_->ChildEnv();
    run_dir_ = tmp_.path() / "run";
    fs::create_directories(run_dir_);
    fs::permissions(run_dir_, static_cast<fs::perms>(0750));
    socket_ = (run_dir_ / "signer.sock").string();
  }

  ProcessResult Kubehsm(std::vector<std::string> args) {
    args.insert(args.begin(), KubehsmBinary().string());
    return RunProcess(args, env_);
  }

  // For a `serve` that must refuse to start: killed after 30 s (exit 124) if it serves instead.
  ProcessResult KubehsmMustExit(std::vector<std::string> args) {
    args.insert(args.begin(), {"timeout", "30", KubehsmBinary().string()});
    return RunProcess(args, env_);
  }

  // `sa rotate --type TYPE` + `sa activate --force`; returns the active kid.
  std::string CreateActiveKey(const std::string& type) {
    ProcessResult r = Kubehsm({"sa", "rotate", "--type", type});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    r = Kubehsm({"sa", "activate", "--force"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    const auto start = r.out.find("activated ");
    if (start == std::string::npos) return "";
    const auto end = r.out.find(':', start);
    return r.out.substr(start + 10, end - start - 10);
  }

  // Starts `kubehsm serve --socket <socket_> extra...` and waits until it logs that it serves.
  std::unique_ptr<ChildProcess> StartServe(std::vector<std::string> extra, const std::string& socket = "") {
    std::vector<std::string> argv = {KubehsmBinary().string(), "serve", "--socket", socket.empty() ? socket_ : socket};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto child = std::make_unique<ChildProcess>(argv, env_, tmp_.path() / ("serve-" + std::to_string(++serves_) + ".log"));
    if (!child->WaitForLog("event=serving", seconds(60))) {
      ADD_FAILURE() << "kubehsm serve did not start:\n" << child->Log();
    }
    return child;
  }

  // Runs the one-call client as uid/gid 65534 (nobody) with no supplementary groups.
  ProcessResult RunClientAsNobody(const std::string& socket, const std::string& api, const std::string& method) {
    return RunProcess({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", KUBEHSM_SIGNER_CLIENT, socket,
                       api, method});
  }

  TempDir tmp_;
  std::unique_ptr<SoftHsmToken> token_;
  std::map<std::string, std::string> env_;
  fs::path run_dir_;
  std::string socket_;
  int serves_ = 0;
};

// --- the API on both versions, every key type ------------------------------------------------

class ServeKeyTypeTest : public ServeTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(ServeKeyTypeTest, SignFetchKeysMetadataOnBothVersionsVerifyIndependently) {
  const std::string kid = CreateActiveKey(GetParam());
  ASSERT_EQ(kid.size(), 43u);
  auto serve = StartServe({"--max-token-expiration-seconds", "7200", "--refresh-hint-seconds", "42"});
  ASSERT_TRUE(serve->Running());

  std::vector<std::string> tokens;
  std::vector<CallResult::Key> keys;
  for (const char* api : {"v1", "v1alpha1"}) {
    SCOPED_TRACE(api);
    SignerClient client(socket_, api);
    CallResult meta = client.Metadata();
    ASSERT_EQ(meta.code, grpc::StatusCode::OK) << meta.message;
    EXPECT_EQ(meta.max_token_expiration_seconds, 7200);

    CallResult fetched = client.FetchKeys();
    ASSERT_EQ(fetched.code, grpc::StatusCode::OK) << fetched.message;
    ASSERT_EQ(fetched.keys.size(), 1u);
    EXPECT_EQ(fetched.keys[0].kid, kid);
    EXPECT_FALSE(fetched.keys[0].exclude);
    EXPECT_EQ(fetched.refresh_hint_seconds, 42);
    EXPECT_GT(fetched.data_timestamp_seconds, 1700000000);
    keys = fetched.keys;

    const std::string claims = MakeClaims(kIssuer, kAudience);
    CallResult sig = client.Sign(claims);
    ASSERT_EQ(sig.code, grpc::StatusCode::OK) << sig.message;
    // Header exactly {"alg","kid","typ":"JWT"} for this kid; claims used verbatim.
    auto header = Base64UrlDecode(sig.header);
    ASSERT_TRUE(header.ok());
    EXPECT_NE(header->find("\"kid\":\"" + kid + "\""), std::string::npos) << *header;
    EXPECT_NE(header->find("\"typ\":\"JWT\""), std::string::npos) << *header;
    const std::string token = Assemble(claims, sig);
    EXPECT_EQ(VerifyWithOpenSsl(token, fetched.keys), "") << token;
    tokens.push_back(token);

    EXPECT_EQ(client.HealthCheck(""), 1);
    EXPECT_EQ(client.HealthCheck(std::string(api) + ".ExternalJWTSigner"), 1);
  }
  EXPECT_EQ(VerifyWithPyJwt(tokens, keys, kIssuer, kAudience, tmp_.path()), "");
  // The signature segment must be raw r‖s for EC (fixed size) and the modulus size for RSA.
  auto sig_bytes = Base64UrlDecode(tokens[0].substr(tokens[0].rfind('.') + 1));
  ASSERT_TRUE(sig_bytes.ok());
  const std::string type = GetParam();
  const std::size_t want = type == "ecdsa-p256" ? 64 : type == "ecdsa-p384" ? 96 : type == "ecdsa-p521" ? 132 : 256;
  EXPECT_EQ(sig_bytes->size(), want);
  EXPECT_EQ(serve->Stop(SIGTERM, seconds(20)), 0) << serve->Log();
}

INSTANTIATE_TEST_SUITE_P(KeyTypes, ServeKeyTypeTest, ::testing::Values("rsa-2048", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521"),
                         [](const auto& test_info) {
                           std::string n = test_info.param;
                           for (auto& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

TEST_F(ServeTest, MalformedClaimsGetInvalidArgumentOnBothVersions) {
  CreateActiveKey("ecdsa-p256");
  auto serve = StartServe({});
  const std::string json_claims = R"({"iss":"x","sub":"yz"})";  // 22 bytes: standard base64 ends in "=="
  ASSERT_NE(Base64Encode(json_claims).find('='), std::string::npos);
  const std::vector<std::string> bad = {
      "",                                          // empty
      "not base64url!",                            // alphabet
      Base64Encode(json_claims),                   // padded standard base64 ("=" and maybe "+/")
      Base64UrlEncode(Base64UrlEncode(json_claims)),  // encoded twice (issue #141670)
      Base64UrlEncode("[1,2,3]"),                  // JSON, not an object
      Base64UrlEncode("{\"iss\":"),                // truncated JSON
  };
  for (const char* api : {"v1", "v1alpha1"}) {
    SignerClient client(socket_, api);
    for (const auto& claims : bad) {
      CallResult r = client.Sign(claims);
      EXPECT_EQ(r.code, grpc::StatusCode::INVALID_ARGUMENT) << api << " claims '" << claims << "': " << r.message;
    }
    // Still signing after refusals.
    CallResult ok = client.Sign(MakeClaims(kIssuer, kAudience));
    EXPECT_EQ(ok.code, grpc::StatusCode::OK) << ok.message;
  }
  EXPECT_TRUE(serve->Running());
  // Claims content is not logged without --debug.
  EXPECT_EQ(serve->Log().find(Base64UrlEncode(json_claims)), std::string::npos);
}

// --- refusing to start ---------------------------------------------------------------------

TEST_F(ServeTest, MetadataBelow600RefusesToStart) {
  CreateActiveKey("ecdsa-p256");
  ProcessResult r = Kubehsm({"serve", "--socket", socket_, "--max-token-expiration-seconds", "599"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("--max-token-expiration-seconds 599 is below 600"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(socket_));
  // 600 itself is accepted.
  auto serve = StartServe({"--max-token-expiration-seconds", "600"});
  EXPECT_EQ(SignerClient(socket_, "v1").Metadata().max_token_expiration_seconds, 600);
}

TEST_F(ServeTest, PromptPinSourceRefusesToStart) {
  CreateActiveKey("ecdsa-p256");
  ProcessResult r = Kubehsm({"serve", "--socket", socket_, "--pin-source", "prompt"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("non-interactive PIN source"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(socket_));
}

TEST_F(ServeTest, WorldWritableSocketDirectoryRefusesToStart) {
  CreateActiveKey("ecdsa-p256");
  const fs::path open_dir = tmp_.path() / "open";
  fs::create_directories(open_dir);
  fs::permissions(open_dir, static_cast<fs::perms>(01777));
  ProcessResult r = Kubehsm({"serve", "--socket", (open_dir / "signer.sock").string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("world-writable"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(open_dir / "signer.sock"));
}

TEST_F(ServeTest, AbstractSocketWithoutAllowlistRefusesToStart) {
  CreateActiveKey("ecdsa-p256");
  ProcessResult r = Kubehsm(
      {"serve", "--socket", "@kubehsm-e2e-" + std::to_string(::getpid()), "--allow-abstract-socket-insecure"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("--allow-uid"), std::string::npos) << r.err;
}

// Issue #14 item 3: any local user can bind an abstract name while kubehsm is down (boot, restart,
// crash) and kube-apiserver then fetches the impostor's keys. @name needs an opt-in naming the risk.
TEST_F(ServeTest, AbstractSocketIsRefusedWithoutTheInsecureOptIn) {
  CreateActiveKey("ecdsa-p256");
  const std::string name = "@kubehsm-e2e-squat-" + std::to_string(::getpid());
  ProcessResult r = KubehsmMustExit({"serve", "--socket", name, "--allow-uid", "0"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(r.err.starts_with("kubehsm: ")) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("impersonate the signer"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--allow-abstract-socket-insecure"), std::string::npos) << r.err;
  // The metrics socket too.
  r = KubehsmMustExit({"serve", "--socket", socket_, "--metrics-socket", name + "-metrics"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("--allow-abstract-socket-insecure"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(socket_));
  // With the opt-in it serves (the allowlist still applies, see AbstractSocketRefusesPeersNotOnTheAllowlist).
  auto serve = StartServe({"--allow-uid", "0", "--allow-abstract-socket-insecure"}, name);
  EXPECT_EQ(SignerClient(name, "v1").Metadata().code, grpc::StatusCode::OK);
}

// Issue #14 item 9: the owner of the socket directory (or of a directory above it) could move the
// socket away and bind an impostor at the same path.
TEST_F(ServeTest, SocketDirectoryOwnedByAnotherUserOrWritableByOthersRefusesToStart) {
  CreateActiveKey("ecdsa-p256");
  struct Case {
    std::string name;
    int mode;
    bool other_owner;
    std::string want;
  };
  for (const Case& c : {Case{"owned-by-nobody", 0755, true, "is owned by uid 65534"},
                        Case{"group-writable", 0770, false, "is group-writable"},
                        Case{"world-writable-sticky", 01777, false, "world-writable"}}) {
    SCOPED_TRACE(c.name);
    const fs::path dir = tmp_.path() / c.name;
    fs::create_directories(dir);
    fs::permissions(dir, static_cast<fs::perms>(c.mode));
    if (c.other_owner) {
      ASSERT_EQ(::chown(dir.c_str(), kNobody, kNobody), 0);
    }
    ProcessResult r = KubehsmMustExit({"serve", "--socket", (dir / "signer.sock").string()});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_TRUE(r.err.starts_with("kubehsm: error: ")) << r.err;
    EXPECT_NE(r.err.find(c.want), std::string::npos) << r.err;
    EXPECT_TRUE(fs::is_empty(dir)) << "something was created in " << dir;
  }
  // A safe directory under one owned by another user: that user could rename it.
  const fs::path theirs = tmp_.path() / "theirs";
  fs::create_directories(theirs / "run");
  fs::permissions(theirs, static_cast<fs::perms>(0755));
  fs::permissions(theirs / "run", static_cast<fs::perms>(0750));
  ASSERT_EQ(::chown(theirs.c_str(), kNobody, kNobody), 0);
  ProcessResult r = KubehsmMustExit({"serve", "--socket", (theirs / "run" / "signer.sock").string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("above the socket is owned by uid 65534"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(theirs / "run" / "signer.sock"));
}

TEST_F(ServeTest, NoActiveKeyRefusesToStart) {
  ProcessResult r = KubehsmMustExit({"serve", "--socket", socket_});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("service-account key"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(socket_));
}

// --- socket security -------------------------------------------------------------------------

TEST_F(ServeTest, FilesystemSocketIsOwnerOnlyAndAnotherUidCannotConnect) {
  CreateActiveKey("ecdsa-p256");
  // Let uid 65534 reach the directory, so only the socket's own mode stands in its way.
  fs::permissions(tmp_.path(), static_cast<fs::perms>(0755));
  fs::permissions(run_dir_, static_cast<fs::perms>(0755));
  auto serve = StartServe({});
  struct stat st{};
  ASSERT_EQ(::lstat(socket_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, ::getuid());

  ProcessResult nobody = RunClientAsNobody(socket_, "v1", "Metadata");
  EXPECT_EQ(nobody.exit_code, 3) << nobody.out << nobody.err;
  EXPECT_NE(nobody.out.find("UNAVAILABLE"), std::string::npos) << nobody.out;  // connect(): EACCES
  ProcessResult root = RunProcess({KUBEHSM_SIGNER_CLIENT, socket_, "v1", "Metadata"});
  EXPECT_EQ(root.exit_code, 0) << root.out << root.err;
  EXPECT_EQ(root.out, "OK 86400\n");
}

TEST_F(ServeTest, GroupSocketStillEnforcesTheUidAllowlist) {
  CreateActiveKey("ecdsa-p256");
  fs::permissions(tmp_.path(), static_cast<fs::perms>(0755));
  fs::permissions(run_dir_, static_cast<fs::perms>(0755));
  auto serve = StartServe({"--socket-group", "65534", "--allow-uid", "0"});
  struct stat st{};
  ASSERT_EQ(::lstat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_gid, 65534u);
  // uid/gid 65534 may connect through the group bit, but is not on the allowlist: its connection
  // is closed at once (the client sees UNAVAILABLE), after an audit line.
  ProcessResult nobody = RunClientAsNobody(socket_, "v1", "Sign");
  EXPECT_EQ(nobody.exit_code, 3) << nobody.out << nobody.err;
  EXPECT_NE(nobody.out.find("UNAVAILABLE"), std::string::npos) << nobody.out;
  EXPECT_NE(serve->Log().find("event=audit_connection allowed=false"), std::string::npos) << serve->Log();
  EXPECT_EQ(RunProcess({KUBEHSM_SIGNER_CLIENT, socket_, "v1alpha1", "FetchKeys"}).exit_code, 0);
}

TEST_F(ServeTest, AbstractSocketRefusesPeersNotOnTheAllowlist) {
  const std::string kid = CreateActiveKey("ecdsa-p256");
  const std::string name = "@kubehsm-e2e-" + std::to_string(::getpid()) + "-" + std::to_string(::time(nullptr));
  auto serve = StartServe({"--allow-uid", "0", "--allow-abstract-socket-insecure"}, name);
  for (const char* api : {"v1", "v1alpha1"}) {
    for (const char* method : {"Sign", "FetchKeys", "Metadata"}) {
      ProcessResult nobody = RunClientAsNobody(name, api, method);
      EXPECT_EQ(nobody.exit_code, 3) << api << " " << method << ": " << nobody.out << nobody.err;
      EXPECT_NE(nobody.out.find("UNAVAILABLE"), std::string::npos) << nobody.out;  // closed at once
    }
  }
  const std::string log = serve->Log();
  EXPECT_NE(log.find("event=audit_connection allowed=false"), std::string::npos) << log;
  EXPECT_NE(log.find("uid=" + std::to_string(kNobody)), std::string::npos) << log;
  // The allowed uid (root, this test) signs.
  SignerClient client(name, "v1");
  const std::string claims = MakeClaims(kIssuer, kAudience);
  CallResult r = client.Sign(claims);
  ASSERT_EQ(r.code, grpc::StatusCode::OK) << r.message;
  EXPECT_EQ(VerifyWithOpenSsl(Assemble(claims, r), client.FetchKeys().keys), "");
}

// --- load ----------------------------------------------------------------------------------

TEST_F(ServeTest, SixteenConcurrentClientsFiveHundredRequestsEachAllVerify) {
  const std::string kid = CreateActiveKey("rsa-2048");
  const fs::path metrics = run_dir_ / "metrics.sock";
  auto serve = StartServe({"--metrics-socket", metrics.string()});
  constexpr int kClients = 16;
  constexpr int kRequests = 500;
  std::vector<std::vector<std::string>> tokens(kClients);
  std::atomic<int> failures{0};
  std::string first_failure;
  std::mutex failure_mu;
  const auto start = std::chrono::steady_clock::now();
  {
    std::vector<std::thread> threads;
    for (int c = 0; c < kClients; ++c) {
      threads.emplace_back([&, c] {
        SignerClient client(socket_, c % 2 == 0 ? "v1" : "v1alpha1");  // one connection per client
        for (int i = 0; i < kRequests; ++i) {
          const std::string claims = MakeClaims(kIssuer, kAudience);
          CallResult r = client.Sign(claims, seconds(60));
          if (r.code != grpc::StatusCode::OK) {
            if (failures++ == 0) {
              std::lock_guard<std::mutex> lock(failure_mu);
              first_failure = CodeName(r.code) + ": " + r.message;
            }
            continue;
          }
          tokens[c].push_back(Assemble(claims, r));
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double rate = kClients * kRequests / elapsed;
  std::cout << "[ throughput ] " << kClients << " clients x " << kRequests << " Sign (RSA-2048, SoftHSM): " << elapsed
            << " s, " << rate << " tokens/s\n";
  RecordProperty("tokens_per_second", std::to_string(static_cast<int>(rate)));
  EXPECT_EQ(failures.load(), 0) << first_failure;
  ASSERT_TRUE(serve->Running()) << serve->Log();

  CallResult fetched = SignerClient(socket_, "v1").FetchKeys();
  ASSERT_EQ(fetched.code, grpc::StatusCode::OK);
  int verified = 0;
  std::vector<std::string> sample;
  for (int c = 0; c < kClients; ++c) {
    ASSERT_EQ(tokens[c].size(), static_cast<std::size_t>(kRequests));
    for (const auto& t : tokens[c]) {
      const std::string err = VerifyWithOpenSsl(t, fetched.keys);
      if (err.empty()) {
        ++verified;
      } else {
        ADD_FAILURE() << err << ": " << t;
      }
    }
    sample.push_back(tokens[c].front());
    sample.push_back(tokens[c].back());
  }
  EXPECT_EQ(verified, kClients * kRequests);
  EXPECT_EQ(VerifyWithPyJwt(sample, fetched.keys, kIssuer, kAudience, tmp_.path()), "");

  const std::string text = ScrapeMetrics(metrics);
  EXPECT_NE(text.find("HTTP/1.0 200 OK"), std::string::npos) << text;
  EXPECT_NE(text.find("kubehsm_serve_requests_total{api=\"v1\",method=\"Sign\",code=\"OK\"} 4000\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("kubehsm_serve_requests_total{api=\"v1alpha1\",method=\"Sign\",code=\"OK\"} 4000\n"),
            std::string::npos) << text;
  EXPECT_NE(text.find("kubehsm_serve_request_duration_seconds_count{method=\"Sign\"} 8000\n"), std::string::npos);
  EXPECT_NE(text.find("kubehsm_serve_backend_up 1\n"), std::string::npos);
  EXPECT_EQ(serve->Stop(SIGTERM, seconds(20)), 0) << serve->Log();
}

// --- operations: rotation by another process, SIGHUP, SIGTERM --------------------------------

TEST_F(ServeTest, RotationByAnotherProcessIsPickedUpWithoutRestart) {
  const std::string old_kid = CreateActiveKey("ecdsa-p256");
  auto serve = StartServe({"--key-poll-seconds", "1", "--refresh-hint-seconds", "5"});
  SignerClient client(socket_, "v1");
  CallResult before = client.FetchKeys();
  ASSERT_EQ(before.keys.size(), 1u);
  std::this_thread::sleep_for(milliseconds(2500));  // two polls with no change
  CallResult same = client.FetchKeys();
  EXPECT_EQ(same.data_timestamp_seconds, before.data_timestamp_seconds);
  EXPECT_EQ(same.data_timestamp_nanos, before.data_timestamp_nanos);

  // `sa rotate` in another process: the next key is published, signing stays on the old one.
  ProcessResult rotated = Kubehsm({"sa", "rotate", "--type", "ecdsa-p384"});
  ASSERT_EQ(rotated.exit_code, 0) << rotated.err;
  CallResult after;
  for (int i = 0; i < 100; ++i) {
    after = client.FetchKeys();
    if (after.keys.size() == 2) break;
    std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_EQ(after.keys.size(), 2u) << serve->Log();
  EXPECT_NE(std::make_pair(after.data_timestamp_seconds, after.data_timestamp_nanos),
            std::make_pair(before.data_timestamp_seconds, before.data_timestamp_nanos));
  std::string new_kid = after.keys[0].kid == old_kid ? after.keys[1].kid : after.keys[0].kid;
  std::string claims = MakeClaims(kIssuer, kAudience);
  CallResult r = client.Sign(claims);
  ASSERT_EQ(r.code, grpc::StatusCode::OK);
  EXPECT_NE(Base64UrlDecode(r.header)->find(old_kid), std::string::npos);
  EXPECT_EQ(VerifyWithOpenSsl(Assemble(claims, r), after.keys), "");

  // `sa activate` + SIGHUP: the next Sign uses the new key; the set itself did not change.
  ProcessResult activated = Kubehsm({"sa", "activate", "--force", "--key=" + new_kid});
  ASSERT_EQ(activated.exit_code, 0) << activated.err;
  serve->Signal(SIGHUP);
  bool switched = false;
  for (int i = 0; i < 100 && !switched; ++i) {
    claims = MakeClaims(kIssuer, kAudience);
    r = client.Sign(claims);
    ASSERT_EQ(r.code, grpc::StatusCode::OK) << r.message;
    // Whatever key signed, the header names it (checked by verification against its kid).
    ASSERT_EQ(VerifyWithOpenSsl(Assemble(claims, r), after.keys), "");
    switched = Base64UrlDecode(r.header)->find(new_kid) != std::string::npos;
    if (!switched) std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_TRUE(switched) << serve->Log();
  EXPECT_NE(serve->Log().find("event=sighup"), std::string::npos);
  CallResult final_keys = client.FetchKeys();
  // The same kids; data_timestamp follows the token's labels, so it moves to the activation's
  // label time (or stays, when activation fell in the rotation's second): never backwards.
  ASSERT_EQ(final_keys.keys.size(), after.keys.size());
  EXPECT_GE(final_keys.data_timestamp_seconds, after.data_timestamp_seconds);
  EXPECT_EQ(final_keys.data_timestamp_nanos, after.data_timestamp_nanos);
  EXPECT_EQ(VerifyWithPyJwt({Assemble(claims, r)}, final_keys.keys, kIssuer, kAudience, tmp_.path()), "");
}

TEST_F(ServeTest, ExcludedKidIsPublishedVerifyOnly) {
  const std::string active = CreateActiveKey("ecdsa-p256");
  ProcessResult rotated = Kubehsm({"sa", "rotate", "--type", "rsa-2048"});
  ASSERT_EQ(rotated.exit_code, 0) << rotated.err;
  const auto pos = rotated.out.find("created next key ");
  ASSERT_NE(pos, std::string::npos);
  const std::string next = rotated.out.substr(pos + 17, 43);
  auto serve = StartServe({"--exclude-from-oidc", next});
  CallResult keys = SignerClient(socket_, "v1alpha1").FetchKeys();
  ASSERT_EQ(keys.keys.size(), 2u);
  for (const auto& k : keys.keys) EXPECT_EQ(k.exclude, k.kid == next) << k.kid;
  // Activating the excluded key is refused at signing time, never signed with.
  ASSERT_EQ(Kubehsm({"sa", "activate", "--force", "--key=" + next}).exit_code, 0);
  serve->Signal(SIGHUP);
  ASSERT_TRUE(serve->WaitForLog("event=no_usable_active_key", seconds(20))) << serve->Log();
  CallResult r = SignerClient(socket_, "v1").Sign(MakeClaims(kIssuer, kAudience));
  EXPECT_EQ(r.code, grpc::StatusCode::FAILED_PRECONDITION) << r.message;
  EXPECT_TRUE(serve->Running());
}

TEST_F(ServeTest, SigtermShutsDownGracefullyAndRemovesTheSocket) {
  CreateActiveKey("ecdsa-p256");
  auto serve = StartServe({});
  ASSERT_TRUE(fs::exists(socket_));
  // Calls in flight while SIGTERM arrives finish with OK or are refused cleanly, never crash it.
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, bad{0};
  std::thread caller([&] {
    SignerClient client(socket_, "v1");
    while (!stop) {
      CallResult r = client.Sign(MakeClaims(kIssuer, kAudience), seconds(5));
      (r.code == grpc::StatusCode::OK ? ok : bad)++;
      if (r.code != grpc::StatusCode::OK) break;
    }
  });
  std::this_thread::sleep_for(milliseconds(300));
  const int code = serve->Stop(SIGTERM, seconds(20));
  stop = true;
  caller.join();
  EXPECT_EQ(code, 0) << serve->Log();
  EXPECT_GT(ok.load(), 0);
  EXPECT_FALSE(fs::exists(socket_));
  const std::string log = serve->Log();
  EXPECT_NE(log.find("event=shutting_down signal=SIGTERM"), std::string::npos) << log;
  EXPECT_NE(log.find("event=stopped"), std::string::npos) << log;
  // No PIN in the log.
  EXPECT_EQ(log.find(token_->user_pin()), std::string::npos);
}

// --- resilience: the token fails while the server runs ---------------------------------------

TEST_F(ServeTest, TokenFaultsGiveUnavailableFastAndSigningResumesByItself) {
#ifndef KUBEHSM_FAULT_PKCS11_PATH
  GTEST_SKIP() << "the fault-injecting PKCS#11 shim (kubehsm_fault_pkcs11) is not part of this build";
#else
  const std::string kid = CreateActiveKey("ecdsa-p256");
  const fs::path control = tmp_.path() / "fault.conf";
  WriteTestFile(control, "");
  auto set_fault = [&](const std::string& text) {
    WriteTestFile(tmp_.path() / "fault.conf.new", text);
    fs::rename(tmp_.path() / "fault.conf.new", control);
  };
  env_["KUBEHSM_FAULT_CONTROL"] = control.string();
  env_["KUBEHSM_FAULT_REAL_MODULE"] = token_->module_path();
  auto serve = StartServe({"--module", KUBEHSM_FAULT_PKCS11_PATH});
  SignerClient client(socket_, "v1");
  const CallResult keys = client.FetchKeys();
  ASSERT_EQ(keys.code, grpc::StatusCode::OK);

  auto sign_and_verify = [&]() -> CallResult {
    const std::string claims = MakeClaims(kIssuer, kAudience);
    CallResult r = client.Sign(claims, seconds(10));
    if (r.code == grpc::StatusCode::OK) {
      EXPECT_EQ(VerifyWithOpenSsl(Assemble(claims, r), keys.keys), "") << "a signature from the wrong key";
    }
    return r;
  };
  ASSERT_EQ(sign_and_verify().code, grpc::StatusCode::OK);

  for (const std::string fault : {"C_Sign=CKR_DEVICE_ERROR\n", "*=CKR_DEVICE_REMOVED\n",
                                  "C_GetTokenInfo=CKR_TOKEN_NOT_PRESENT\nC_Sign=CKR_TOKEN_NOT_PRESENT\n"}) {
    SCOPED_TRACE(fault);
    set_fault(fault);
    // Every call fails with UNAVAILABLE, and once the backend is marked down, at once.
    double slowest_after_down = 0;
    for (int i = 0; i < 20; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      CallResult r = sign_and_verify();
      const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      EXPECT_EQ(r.code, grpc::StatusCode::UNAVAILABLE) << CodeName(r.code) << ": " << r.message;
      if (i >= 5) slowest_after_down = std::max(slowest_after_down, took);
    }
    EXPECT_LT(slowest_after_down, 0.5) << "UNAVAILABLE was not fast";
    ASSERT_TRUE(serve->Running()) << serve->Log();
    // The published keys are still served while the token is down.
    EXPECT_EQ(client.FetchKeys().code, grpc::StatusCode::OK);
    EXPECT_EQ(client.HealthCheck("v1.ExternalJWTSigner"), 2);  // NOT_SERVING
    EXPECT_EQ(client.HealthCheck(""), 1);

    set_fault("");
    bool resumed = false;
    for (int i = 0; i < 300 && !resumed; ++i) {
      CallResult r = sign_and_verify();
      resumed = r.code == grpc::StatusCode::OK;
      if (!resumed) {
        EXPECT_EQ(r.code, grpc::StatusCode::UNAVAILABLE) << r.message;
        std::this_thread::sleep_for(milliseconds(100));
      }
    }
    ASSERT_TRUE(resumed) << serve->Log();
  }

  // The token loses its login (PKCS#11 login state is per application): recovered by re-login.
  set_fault("logout=1\n");
  bool saw_ok_after = false;
  for (int i = 0; i < 300 && !saw_ok_after; ++i) {
    CallResult r = sign_and_verify();
    if (r.code == grpc::StatusCode::OK && i > 0) {
      saw_ok_after = serve->Log().find("event=backend_recovered") != std::string::npos;
    }
    if (r.code != grpc::StatusCode::OK) {
      EXPECT_EQ(r.code, grpc::StatusCode::UNAVAILABLE) << r.message;
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_TRUE(saw_ok_after) << serve->Log();
  const std::string log = serve->Log();
  EXPECT_NE(log.find("event=backend_down"), std::string::npos) << log;
  EXPECT_NE(log.find("event=backend_recovered"), std::string::npos) << log;
  // pkcs11-provider's own re-login never reaches a terminal prompt (it would block a signing thread).
  EXPECT_EQ(log.find("Enter PIN"), std::string::npos) << log;
  EXPECT_EQ(serve->Stop(SIGTERM, seconds(20)), 0) << log;
  if (std::getenv("KUBEHSM_TEST_SHOW_LOG") != nullptr) std::cout << serve->Log();
#endif
}

TEST_F(ServeTest, RefusedPinDuringRecoveryPausesUntilSighup) {
#ifndef KUBEHSM_FAULT_PKCS11_PATH
  GTEST_SKIP() << "the fault-injecting PKCS#11 shim (kubehsm_fault_pkcs11) is not part of this build";
#else
  CreateActiveKey("ecdsa-p256");
  const fs::path control = tmp_.path() / "fault.conf";
  WriteTestFile(control, "");
  env_["KUBEHSM_FAULT_CONTROL"] = control.string();
  env_["KUBEHSM_FAULT_REAL_MODULE"] = token_->module_path();
  auto serve = StartServe({"--module", KUBEHSM_FAULT_PKCS11_PATH});
  SignerClient client(socket_, "v1");
  ASSERT_EQ(client.Sign(MakeClaims(kIssuer, kAudience)).code, grpc::StatusCode::OK);

  // The token goes away, and meanwhile the PIN file is changed to a wrong PIN.
  WriteTestFile(tmp_.path() / "fault.conf.new", "*=CKR_DEVICE_REMOVED\n");
  fs::rename(tmp_.path() / "fault.conf.new", control);
  EXPECT_EQ(client.Sign(MakeClaims(kIssuer, kAudience)).code, grpc::StatusCode::UNAVAILABLE);
  WriteTestFile(token_->user_pin_file(), "000000000000\n");
  WriteTestFile(tmp_.path() / "fault.conf.new", "");
  fs::rename(tmp_.path() / "fault.conf.new", control);
  ASSERT_TRUE(serve->WaitForLog("event=backend_reopen_paused", seconds(30))) << serve->Log();
  // Paused: no further C_Login attempts on a timer.
  std::this_thread::sleep_for(seconds(2));
  const std::string log = serve->Log();
  std::size_t logins = 0;
  for (auto p = log.find("C_Login"); p != std::string::npos; p = log.find("C_Login", p + 1)) ++logins;
  EXPECT_EQ(logins, 1u) << log;
  EXPECT_EQ(client.Sign(MakeClaims(kIssuer, kAudience)).code, grpc::StatusCode::UNAVAILABLE);

  // Fixed PIN + SIGHUP: recovers.
  WriteTestFile(token_->user_pin_file(), token_->user_pin() + "\n");
  serve->Signal(SIGHUP);
  ASSERT_TRUE(serve->WaitForLog("event=backend_recovered", seconds(30))) << serve->Log();
  const std::string claims = MakeClaims(kIssuer, kAudience);
  CallResult r = client.Sign(claims);
  ASSERT_EQ(r.code, grpc::StatusCode::OK) << r.message;
  EXPECT_EQ(VerifyWithOpenSsl(Assemble(claims, r), client.FetchKeys().keys), "");
  EXPECT_EQ(serve->Log().find(token_->user_pin()), std::string::npos);
#endif
}

// --- issue #14 item 2: a local user must not be able to disable serve ---------------------------

// uid 65534 (on the socket's group, not on the allowlist) opens and holds 1100 connections against a
// daemon with 512 descriptors. Each refused connection is closed at once, so the daemon's descriptor
// count stays flat, the allowed client (uid 0) keeps being served during and after the flood, and
// the key poll during the flood keeps the full published set.
TEST_F(ServeTest, FloodOfRefusedConnectionsNeitherHoldsDescriptorsNorStarvesTheAllowedClient) {
  const std::string kid = CreateActiveKey("ecdsa-p256");
  fs::permissions(tmp_.path(), static_cast<fs::perms>(0755));
  fs::permissions(run_dir_, static_cast<fs::perms>(0755));
  std::vector<std::string> argv = {"prlimit", "--nofile=512:512", KubehsmBinary().string(), "serve", "--socket",
                                   socket_, "--socket-group", "65534", "--allow-uid", "0", "--key-poll-seconds", "1"};
  ChildProcess serve(argv, env_, tmp_.path() / "serve-flood.log");
  ASSERT_TRUE(serve.WaitForLog("event=serving", seconds(60))) << serve.Log();
  SignerClient client(socket_, "v1");
  const CallResult before = client.FetchKeys();
  ASSERT_EQ(before.code, grpc::StatusCode::OK) << before.message;
  ASSERT_EQ(before.keys.size(), 1u);
  ASSERT_EQ(client.Sign(MakeClaims(kIssuer, kAudience)).code, grpc::StatusCode::OK);
  const int baseline_fds = CountFds(serve.pid());
  ASSERT_GT(baseline_fds, 0);

  ProcessResult flood;
  std::thread flooder([&] { flood = HoldConnections(socket_, 1100, 8, /*as_nobody=*/true); });
  int max_fds = baseline_fds;
  int calls = 0, failures = 0;
  std::string first_failure;
  const auto end = std::chrono::steady_clock::now() + seconds(6);
  while (std::chrono::steady_clock::now() < end) {
    max_fds = std::max(max_fds, CountFds(serve.pid()));
    const std::string claims = MakeClaims(kIssuer, kAudience);
    CallResult sig = client.Sign(claims, seconds(3));
    CallResult keys = SignerClient(socket_, "v1alpha1").FetchKeys(seconds(3));  // a fresh connection
    calls += 2;
    if (sig.code != grpc::StatusCode::OK || keys.code != grpc::StatusCode::OK || keys.keys.size() != 1) {
      if (failures++ == 0) first_failure = CodeName(sig.code) + " " + sig.message + " / " + CodeName(keys.code) + " " + keys.message + " keys=" + std::to_string(keys.keys.size());
    } else {
      EXPECT_EQ(VerifyWithOpenSsl(Assemble(claims, sig), keys.keys), "");
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  flooder.join();
  EXPECT_EQ(flood.exit_code, 0) << flood.out << flood.err;
  EXPECT_EQ(failures, 0) << "of " << calls << " calls; first: " << first_failure;
  // Every connection of the flood was closed by the daemon, none is held.
  EXPECT_GE(ReportValue(flood.out, "connected"), 1000) << flood.out;
  EXPECT_EQ(ReportValue(flood.out, "open"), 0) << flood.out;
  EXPECT_LE(max_fds, baseline_fds + 16) << "descriptors grew from " << baseline_fds;

  // After the flood: still signing, the same published set (same data_timestamp: never replaced).
  const std::string claims = MakeClaims(kIssuer, kAudience);
  CallResult sig = client.Sign(claims);
  ASSERT_EQ(sig.code, grpc::StatusCode::OK) << sig.message;
  CallResult after = client.FetchKeys();
  ASSERT_EQ(after.code, grpc::StatusCode::OK) << after.message;
  ASSERT_EQ(after.keys.size(), 1u);
  EXPECT_EQ(after.keys[0].kid, kid);
  EXPECT_EQ(after.data_timestamp_seconds, before.data_timestamp_seconds);
  EXPECT_EQ(after.data_timestamp_nanos, before.data_timestamp_nanos);
  EXPECT_EQ(VerifyWithOpenSsl(Assemble(claims, sig), after.keys), "");
  const std::string log = serve.Log();
  EXPECT_EQ(log.find("published=0"), std::string::npos) << log;
  EXPECT_NE(log.find("event=audit_connection allowed=false"), std::string::npos);
  // Rate-limited audit lines, with the rest counted.
  EXPECT_NE(log.find("event=audit_connection_suppressed count="), std::string::npos) << log.substr(0, 4000);
  std::size_t audit_lines = 0;
  for (auto p = log.find("event=audit_connection "); p != std::string::npos; p = log.find("event=audit_connection ", p + 1)) ++audit_lines;
  EXPECT_LT(audit_lines, 500u);
  EXPECT_EQ(serve.Stop(SIGTERM, seconds(20)), 0) << log;
}

// --max-connections-per-uid and --max-connections: connections over either cap are closed at once;
// those within stay open; once they are gone, the same uid is served again.
TEST_F(ServeTest, ConnectionCapsPerUidAndInTotalCloseTheExcessAtOnce) {
  CreateActiveKey("ecdsa-p256");
  fs::permissions(tmp_.path(), static_cast<fs::perms>(0755));
  fs::permissions(run_dir_, static_cast<fs::perms>(0755));
  auto serve = StartServe({"--socket-group", "65534", "--allow-uid", "0", "--allow-uid", "65534", "--max-connections",
                           "6", "--max-connections-per-uid", "4"});
  ProcessResult root_hold;
  std::thread root_thread([&] { root_hold = HoldConnections(socket_, 10, 6, /*as_nobody=*/false); });
  std::this_thread::sleep_for(milliseconds(2500));  // root's 10 are in (and 6 of them closed)
  ProcessResult nobody_hold = HoldConnections(socket_, 10, 1.5, /*as_nobody=*/true);
  root_thread.join();
  EXPECT_EQ(ReportValue(root_hold.out, "connected"), 10) << root_hold.out << root_hold.err;
  EXPECT_EQ(ReportValue(root_hold.out, "open"), 4) << root_hold.out;  // the per-uid cap
  EXPECT_EQ(ReportValue(nobody_hold.out, "connected"), 10) << nobody_hold.out << nobody_hold.err;
  EXPECT_EQ(ReportValue(nobody_hold.out, "open"), 2) << nobody_hold.out;  // the total cap: 4 + 2
  const std::string log = serve->Log();
  EXPECT_NE(log.find("reason=max_connections_per_uid"), std::string::npos) << log;
  EXPECT_NE(log.find("reason=max_connections "), std::string::npos) << log;
  // The holders are gone: root is served again (gRPC closes their descriptors as it sees EOF).
  bool served = false;
  for (int i = 0; i < 50 && !served; ++i) {
    served = SignerClient(socket_, "v1").Sign(MakeClaims(kIssuer, kAudience), seconds(2)).code == grpc::StatusCode::OK;
    if (!served) std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(served) << serve->Log();
  // Bad values are usage errors.
  ProcessResult bad = KubehsmMustExit({"serve", "--socket", (run_dir_ / "other.sock").string(), "--max-connections", "4",
                               "--max-connections-per-uid", "5"});
  EXPECT_EQ(bad.exit_code, 1) << bad.err;
  EXPECT_NE(bad.err.find("--max-connections-per-uid"), std::string::npos) << bad.err;
}

// --- issue #14 item 11: Sign checks the claims ------------------------------------------------

TEST_F(ServeTest, SignRefusesClaimsKubeApiserverWouldNeverSend) {
  CreateActiveKey("ecdsa-p256");
  auto serve = StartServe({"--max-token-expiration-seconds", "86400"});
  const int64_t now = NowSeconds();
  std::string deep = "[";
  for (int i = 0; i < 10000; ++i) deep += "[";
  for (int i = 0; i <= 10000; ++i) deep += "]";
  std::string very_deep;
  for (int i = 0; i < 200000; ++i) very_deep += "[";
  for (int i = 0; i < 200000; ++i) very_deep += "]";
  auto WithFractionalExp = [](std::string json) {
    const auto pos = json.find("\"exp\":");
    return json.insert(json.find(',', pos), ".5");
  };
  struct Case {
    std::string name, claims, want;
  };
  const std::vector<Case> cases = {
      {"100-year lifetime", B64(ClaimsJson(now, now + 100LL * 365 * 86400)), "exceeds this signer's maximum of 86400"},
      {"one second over the maximum", B64(ClaimsJson(now, now + 86401)), "exp - iat = 86401"},
      {"iat a year ahead", B64(ClaimsJson(now + 365LL * 86400, now + 365LL * 86400 + 3600)), "in the future"},
      {"duplicate exp", B64(ClaimsJson(now, now + 3600, "", R"(,"exp":)" + std::to_string(now + 100LL * 365 * 86400))),
       "duplicate member \"exp\""},
      {"duplicate inside kubernetes.io", B64(ClaimsJson(now, now + 3600, R"("namespace":"kube-system",)")),
       "duplicate member \"namespace\""},
      {"not a token", B64(R"({"hello":"world"})"), "missing required claim \"iss\""},
      {"no exp", B64(R"({"aud":["a"],"iss":"https://k","sub":"system:serviceaccount:default:default"})"),
       "missing required claim \"exp\""},
      {"no iat", B64(R"({"aud":["a"],"exp":)" + std::to_string(now + 600) + R"(,"iss":"https://k","jti":"j","kubernetes.io":{"namespace":"default","serviceaccount":{"name":"default","uid":"u"}},"nbf":)" + std::to_string(now) + R"(,"sub":"system:serviceaccount:default:default"})"),
       "missing required claim \"iat\""},
      {"no jti", B64(R"({"aud":["a"],"exp":)" + std::to_string(now + 600) + R"(,"iat":)" + std::to_string(now) + R"(,"iss":"https://k","kubernetes.io":{"namespace":"default","serviceaccount":{"name":"default","uid":"u"}},"nbf":)" + std::to_string(now) + R"(,"sub":"system:serviceaccount:default:default"})"),
       "no jti"},
      {"fractional exp", B64(WithFractionalExp(ClaimsJson(now, now + 3600))), "\"exp\" must be an integer"},
      {"deep nesting within the size limit", B64(ClaimsJson(now, now + 3600, "", R"(,"x":)" + deep)), "nested too deeply"},
      {"200k-deep nesting", B64(very_deep), "over the limit of 65536 decoded bytes"},
      {"3.9 MB claims", B64(ClaimsJson(now, now + 3600, "", R"(,"x":")" + std::string(2900000, 'a') + "\"")),
       "over the limit of 65536 decoded bytes"},
  };
  for (const char* api : {"v1", "v1alpha1"}) {
    SignerClient client(socket_, api);
    for (const auto& c : cases) {
      CallResult r = client.Sign(c.claims);
      EXPECT_EQ(r.code, grpc::StatusCode::INVALID_ARGUMENT) << api << " " << c.name << ": " << CodeName(r.code);
      EXPECT_NE(r.message.find(c.want), std::string::npos) << api << " " << c.name << ": " << r.message;
      EXPECT_EQ(r.signature, "") << c.name;
    }
  }
  EXPECT_TRUE(serve->Running());
}

// What kube-apiserver does send is signed verbatim: the plain bound token, the extended lifetime at
// exactly the maximum (with warnafter and the pod's node), secret- and node-bound tokens.
TEST_F(ServeTest, SignAcceptsEveryClaimsShapeKubeApiserverSends) {
  CreateActiveKey("ecdsa-p256");
  auto serve = StartServe({"--max-token-expiration-seconds", "7200"});
  const int64_t now = NowSeconds();
  const std::vector<std::string> good = {
      MakeClaims(kIssuer, kAudience, 3600),
      MakeClaims(kIssuer, kAudience, 7200),
      B64(ClaimsJson(now, now + 7200, R"("node":{"name":"cp1","uid":"a5b1c2d3-0000-4000-8000-000000000001"},)",
                     "")),
      B64(ClaimsJson(now - 30, now + 600, R"("warnafter":)" + std::to_string(now + 3607) + ",")),
      B64(R"({"aud":["api"],"exp":)" + std::to_string(now + 3600) + R"(,"iat":)" + std::to_string(now) +
          R"(,"iss":"https://k","jti":"6f0c","kubernetes.io":{"namespace":"kube-system","secret":{"name":"tok","uid":"s-1"},"serviceaccount":{"name":"builder","uid":"u-1"}},"nbf":)" +
          std::to_string(now) + R"(,"sub":"system:serviceaccount:kube-system:builder"})"),
      B64(R"({"aud":["api"],"exp":)" + std::to_string(now + 3600) + R"(,"iat":)" + std::to_string(now) +
          R"(,"iss":"https://k","jti":"6f0d","kubernetes.io":{"namespace":"kube-system","node":{"name":"w1","uid":"n-1"},"serviceaccount":{"name":"builder","uid":"u-1"}},"nbf":)" +
          std::to_string(now) + R"(,"sub":"system:serviceaccount:kube-system:builder"})"),
  };
  SignerClient client(socket_, "v1");
  const CallResult keys = client.FetchKeys();
  for (const auto& claims : good) {
    CallResult r = client.Sign(claims);
    ASSERT_EQ(r.code, grpc::StatusCode::OK) << *Base64UrlDecode(claims) << ": " << r.message;
    EXPECT_EQ(VerifyWithOpenSsl(Assemble(claims, r), keys.keys), "");
  }
}

// --- hardening of the process ------------------------------------------------------------------

// serve (run as uid 65534, so that another process of the same user can try) is non-dumpable: that
// process cannot read its /proc/PID/environ, and its core-file limit is 0.
TEST_F(ServeTest, ServeIsNotDumpableAndWritesNoCore) {
  CreateActiveKey("ecdsa-p256");
  for (const fs::path& p : {tmp_.path(), token_->dir()}) {
    fs::permissions(p, static_cast<fs::perms>(0755));
    ASSERT_EQ(RunProcess({"chown", "-R", "65534:65534", p.string()}).exit_code, 0);
  }
  std::vector<std::string> argv = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                   KubehsmBinary().string(), "serve", "--socket", socket_};
  ChildProcess serve(argv, env_, tmp_.path() / "serve-nobody.log");
  ASSERT_TRUE(serve.WaitForLog("event=serving", seconds(60))) << serve.Log();
  const std::string status = ReadTestFile("/proc/" + std::to_string(serve.pid()) + "/status");
  ASSERT_NE(status.find("\nUid:\t65534\t65534\t65534\t65534\n"), std::string::npos) << status;
  // Another process of the same user may read a dumpable process's /proc/PID/environ (ptrace read
  // access), not a non-dumpable one's.
  ProcessResult peek = RunProcess({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat",
                                   "/proc/" + std::to_string(serve.pid()) + "/environ"});
  EXPECT_NE(peek.exit_code, 0) << "uid 65534 read the daemon's environment: it is dumpable";
  EXPECT_NE(peek.err.find("Permission denied"), std::string::npos) << peek.err;
  const std::string limits = ReadTestFile("/proc/" + std::to_string(serve.pid()) + "/limits");
  EXPECT_NE(limits.find("Max core file size        0                    0"), std::string::npos) << limits;
  EXPECT_EQ(RunProcess({KUBEHSM_SIGNER_CLIENT, socket_, "v1", "Metadata"}).out, "OK 86400\n");
  EXPECT_EQ(serve.Stop(SIGTERM, seconds(20)), 0) << serve.Log();
}

// An env: PIN is gone from the daemon's environment once read (not even in /proc/PID/environ), and
// the daemon still re-opens the token after a failure with the PIN it kept.
TEST_F(ServeTest, EnvPinIsRemovedFromTheEnvironmentAndStillReopensTheToken) {
#ifndef KUBEHSM_FAULT_PKCS11_PATH
  GTEST_SKIP() << "the fault-injecting PKCS#11 shim (kubehsm_fault_pkcs11) is not part of this build";
#else
  CreateActiveKey("ecdsa-p256");
  const fs::path control = tmp_.path() / "fault.conf";
  WriteTestFile(control, "");
  env_["KUBEHSM_FAULT_CONTROL"] = control.string();
  env_["KUBEHSM_FAULT_REAL_MODULE"] = token_->module_path();
  env_["KUBEHSM_SERVE_TEST_PIN"] = token_->user_pin();
  auto serve = StartServe({"--module", KUBEHSM_FAULT_PKCS11_PATH, "--pin-source", "env:KUBEHSM_SERVE_TEST_PIN"});
  ASSERT_TRUE(serve->Running());
  const std::string environ_text = ReadTestFile("/proc/" + std::to_string(serve->pid()) + "/environ");
  EXPECT_NE(environ_text.find("KUBEHSM_FAULT_CONTROL="), std::string::npos);  // the file was read
  EXPECT_EQ(environ_text.find(token_->user_pin()), std::string::npos) << "the PIN is still in /proc/PID/environ";
  SignerClient client(socket_, "v1");
  ASSERT_EQ(client.Sign(MakeClaims(kIssuer, kAudience)).code, grpc::StatusCode::OK);
  WriteTestFile(tmp_.path() / "fault.conf.new", "*=CKR_DEVICE_REMOVED\n");
  fs::rename(tmp_.path() / "fault.conf.new", control);
  EXPECT_EQ(client.Sign(MakeClaims(kIssuer, kAudience)).code, grpc::StatusCode::UNAVAILABLE);
  WriteTestFile(tmp_.path() / "fault.conf.new", "");
  fs::rename(tmp_.path() / "fault.conf.new", control);
  ASSERT_TRUE(serve->WaitForLog("event=backend_recovered", seconds(30))) << serve->Log();
  const std::string claims = MakeClaims(kIssuer, kAudience);
  CallResult r = client.Sign(claims);
  ASSERT_EQ(r.code, grpc::StatusCode::OK) << r.message;
  EXPECT_EQ(VerifyWithOpenSsl(Assemble(claims, r), client.FetchKeys().keys), "");
  EXPECT_EQ(serve->Log().find(token_->user_pin()), std::string::npos);
#endif
}

// --- issue #13 item 8: a token error never shrinks the published set ----------------------------

TEST_F(ServeTest, DeviceErrorsDuringTheKeyPollKeepThePublishedSet) {
#ifndef KUBEHSM_FAULT_PKCS11_PATH
  GTEST_SKIP() << "the fault-injecting PKCS#11 shim (kubehsm_fault_pkcs11) is not part of this build";
#else
  CreateActiveKey("ecdsa-p256");
  ASSERT_EQ(Kubehsm({"sa", "rotate", "--type", "rsa-2048"}).exit_code, 0);  // a published next key
  const fs::path control = tmp_.path() / "fault.conf";
  WriteTestFile(control, "");
  auto set_fault = [&](const std::string& text) {
    WriteTestFile(tmp_.path() / "fault.conf.new", text);
    fs::rename(tmp_.path() / "fault.conf.new", control);
  };
  env_["KUBEHSM_FAULT_CONTROL"] = control.string();
  env_["KUBEHSM_FAULT_REAL_MODULE"] = token_->module_path();
  auto serve = StartServe({"--module", KUBEHSM_FAULT_PKCS11_PATH, "--key-poll-seconds", "1"});
  SignerClient client(socket_, "v1");
  const CallResult before = client.FetchKeys();
  ASSERT_EQ(before.code, grpc::StatusCode::OK) << before.message;
  ASSERT_EQ(before.keys.size(), 2u);
  auto expect_same = [&](const std::string& when) {
    CallResult now = client.FetchKeys();
    ASSERT_EQ(now.code, grpc::StatusCode::OK) << when << ": " << now.message;
    ASSERT_EQ(now.keys.size(), 2u) << when;
    for (std::size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(now.keys[i].kid, before.keys[i].kid) << when;
      EXPECT_EQ(now.keys[i].der, before.keys[i].der) << when;
    }
    EXPECT_EQ(now.data_timestamp_seconds, before.data_timestamp_seconds) << when;
    EXPECT_EQ(now.data_timestamp_nanos, before.data_timestamp_nanos) << when;
  };
  for (const std::string fault : {"C_GetAttributeValue=CKR_DEVICE_ERROR\n", "C_FindObjects=CKR_DEVICE_ERROR\n",
                                  "C_FindObjectsInit=CKR_DEVICE_ERROR\n"}) {
    SCOPED_TRACE(fault);
    const std::size_t failed_before = [&] {
      const std::string log = serve->Log();
      std::size_t n = 0;
      for (auto p = log.find("event=key_reload_failed"); p != std::string::npos; p = log.find("event=key_reload_failed", p + 1)) ++n;
      return n;
    }();
    set_fault(fault);
    // Three polls (1 s apart) and a SIGHUP reload see the fault; FetchKeys answers the full set throughout.
    for (int i = 0; i < 30; ++i) {
      expect_same("during");
      if (i == 15) serve->Signal(SIGHUP);
      std::this_thread::sleep_for(milliseconds(100));
    }
    const std::string log = serve->Log();
    std::size_t failed_now = 0;
    for (auto p = log.find("event=key_reload_failed"); p != std::string::npos; p = log.find("event=key_reload_failed", p + 1)) ++failed_now;
    EXPECT_GE(failed_now, failed_before + 2) << log;
    EXPECT_NE(log.find("CKR_DEVICE_ERROR"), std::string::npos) << log;
    set_fault("");
    std::this_thread::sleep_for(milliseconds(2500));  // polls with the fault gone
    expect_same("after");
    CallResult sig = client.Sign(MakeClaims(kIssuer, kAudience));
    EXPECT_EQ(sig.code, grpc::StatusCode::OK) << sig.message;
  }
  EXPECT_EQ(serve->Log().find("published=0"), std::string::npos) << serve->Log();
  EXPECT_EQ(serve->Stop(SIGTERM, seconds(20)), 0) << serve->Log();
#endif
}

}  // namespace
}  // namespace kubehsm::testing
