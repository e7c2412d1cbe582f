// Service-account keys across several control-plane nodes, end to end: real `kubehsm serve`
// daemons on real SoftHSM tokens, called over their Unix sockets by a real gRPC client, tokens
// assembled as kube-apiserver does and verified independently (plain OpenSSL, PyJWT) against each
// daemon's FetchKeys.
//
//   - one shared token: two serves on the same token publish the same set with the same
//     data_timestamp (also after a restart) and accept each other's tokens;
//   - one token per node: `sa export-public` / `sa import-public --bundle` make each serve publish
//     the other's keys; a full rotation across both nodes never leaves a token unverifiable on
//     either; bundles with private members, malformed bundles, kid mismatches and kid collisions
//     are refused as a whole.
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

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

// One control-plane node: its token (or a shared one), its environment and its serve socket.
struct Node {
  std::string name;
  SoftHsmToken* token = nullptr;  // borrowed from the fixture
  std::map<std::string, std::string> env;
  std::string socket;
  std::unique_ptr<ChildProcess> serve;
};

// A token as kube-apiserver assembles it, and the kid its header names.
struct SignedToken {
  std::string jwt;
  std::string kid;
  std::string signer;  // node name
};

std::set<std::string> Kids(const std::vector<CallResult::Key>& keys) {
  std::set<std::string> out;
  for (const auto& k : keys) out.insert(k.kid);
  return out;
}

std::string Join(const std::set<std::string>& kids) {
  std::string out;
  for (const auto& k : kids) out += (out.empty() ? "" : " ") + k;
  return out;
}

class ServeHaTest : public ::testing::Test {
 protected:
  // A node on its own fresh token, or (shared != nullptr) on the token of `shared`.
  Node& AddNode(const std::string& name, Node* shared = nullptr) {
    auto node = std::make_unique<Node>();
    node->name = name;
    if (shared == nullptr) {
      tokens_.push_back(std::make_unique<SoftHsmToken>("ha-" + name));
      tokens_.back()->WriteKubehsmConfig();
      node->token = tokens_.back().get();
    } else {
      node->token = shared->token;
    }
    node->env = node->token->ChildEnv();
    const fs::path run = tmp_.path() / ("run-" + name);
    fs::create_directories(run);
    fs::permissions(run, static_cast<fs::perms>(0750));
    node->socket = (run / "signer.sock").string();
    nodes_.push_back(std::move(node));
    return *nodes_.back();
  }

  static ProcessResult Kubehsm(const Node& node, std::vector<std::string> args) {
    args.insert(args.begin(), KubehsmBinary().string());
    return RunProcess(args, node.env);
  }

  // `sa rotate --type TYPE` on `node`; returns the new next kid.
  static std::string Rotate(const Node& node, const std::string& type) {
    ProcessResult r = Kubehsm(node, {"sa", "rotate", "--type", type});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    const auto pos = r.out.find("created next key ");
    if (pos == std::string::npos) return "";
    return r.out.substr(pos + 17, 43);
  }

  // `sa rotate` + `sa activate --force`: the node's first active key.
  static std::string CreateActiveKey(const Node& node, const std::string& type) {
    const std::string kid = Rotate(node, type);
    ProcessResult r = Kubehsm(node, {"sa", "activate", "--force", "--key=" + kid});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return kid;
  }

  // `sa export-public --out <file>` on `node`; returns the file.
  fs::path Export(const Node& node) {
    const fs::path out = tmp_.path() / (node.name + "-bundle-" + std::to_string(++files_) + ".json");
    ProcessResult r = Kubehsm(node, {"sa", "export-public", "--out", out.string()});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return out;
  }

  static ProcessResult Import(const Node& node, const fs::path& bundle) {
    return Kubehsm(node, {"sa", "import-public", "--bundle", bundle.string(), "--expires-in", "30d",
                          "--confirm-key-outside-token"});
  }

  // `sa jwks` of `node`, saved to a file (what an operator copies from another node).
  fs::path SaveJwks(const Node& node) {
    const fs::path out = tmp_.path() / (node.name + "-jwks-" + std::to_string(++files_) + ".json");
    ProcessResult r = Kubehsm(node, {"sa", "jwks"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    WriteTestFile(out, r.out);
    return out;
  }

  // The kids `sa list` shows on `node`.
  static std::set<std::string> ListedKids(const Node& node) {
    ProcessResult r = Kubehsm(node, {"sa", "list", "-o", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::set<std::string> out;
    for (const auto& k : nlohmann::json::parse(r.out)) out.insert(k["kid"].get<std::string>());
    return out;
  }

  void StartServe(Node& node) {
    std::vector<std::string> argv = {
        KubehsmBinary().string(), "serve", "--socket", node.socket, "--key-poll-seconds", "1",
        "--refresh-hint-seconds", "5"};
    node.serve = std::make_unique<ChildProcess>(
        argv, node.env, tmp_.path() / (node.name + "-serve-" + std::to_string(++files_) + ".log"));
    if (!node.serve->WaitForLog("event=serving", seconds(60))) {
      ADD_FAILURE() << node.name << ": kubehsm serve did not start:\n" << node.serve->Log();
    }
  }

  // FetchKeys on `node` until it publishes exactly `kids` (the serve polls the token every second).
  static CallResult WaitForKids(const Node& node, const std::set<std::string>& kids) {
    SignerClient client(node.socket, "v1");
    CallResult r;
    for (int i = 0; i < 200; ++i) {
      r = client.FetchKeys();
      if (r.code == grpc::StatusCode::OK && Kids(r.keys) == kids) return r;
      std::this_thread::sleep_for(milliseconds(100));
    }
    ADD_FAILURE() << node.name << " publishes [" << Join(Kids(r.keys)) << "], expected [" << Join(kids) << "]\n"
                  << node.serve->Log();
    return r;
  }

  // Sign on `node` until its header names `kid` (after an activation the serve switches within a poll).
  static SignedToken SignWith(const Node& node, const std::string& kid) {
    SignerClient client(node.socket, "v1");
    SignedToken out;
    for (int i = 0; i < 200; ++i) {
      const std::string claims = MakeClaims(kIssuer, kAudience);
      CallResult r = client.Sign(claims);
      EXPECT_EQ(r.code, grpc::StatusCode::OK) << r.message;
      if (r.code != grpc::StatusCode::OK) break;
      auto header = Base64UrlDecode(r.header);
      EXPECT_TRUE(header.ok());
      out = {r.header + "." + claims + "." + r.signature, nlohmann::json::parse(*header)["kid"], node.name};
      if (out.kid == kid) return out;
      std::this_thread::sleep_for(milliseconds(100));
    }
    ADD_FAILURE() << node.name << " still signs with " << out.kid << ", expected " << kid << "\n" << node.serve->Log();
    return out;
  }

  // Every token verifies (plain OpenSSL, then PyJWT on the whole batch) against the keys every
  // node's FetchKeys returns now.
  void ExpectAllVerifyEverywhere(const std::vector<SignedToken>& tokens, const std::string& step) {
    SCOPED_TRACE(step);
    for (const auto& node : nodes_) {
      CallResult keys = SignerClient(node->socket, "v1").FetchKeys();
      ASSERT_EQ(keys.code, grpc::StatusCode::OK) << keys.message;
      std::vector<std::string> jwts;
      for (const auto& t : tokens) {
        EXPECT_EQ(VerifyWithOpenSsl(t.jwt, keys.keys), "")
            << "token of " << t.signer << " (kid " << t.kid << ") refused by " << node->name;
        jwts.push_back(t.jwt);
      }
      EXPECT_EQ(VerifyWithPyJwt(jwts, keys.keys, kIssuer, kAudience, tmp_.path()), "") << "on " << node->name;
    }
  }

  // The audit records of `node`'s token directory with `event`.
  static std::vector<nlohmann::json> AuditRecords(const Node& node, const std::string& event) {
    std::vector<nlohmann::json> out;
    const fs::path log = node.token->dir() / "audit.log";
    if (!fs::exists(log)) return out;
    std::istringstream in(ReadTestFile(log));
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      if (j["event"] == event) out.push_back(j);
    }
    return out;
  }

  TempDir tmp_;
  std::vector<std::unique_ptr<SoftHsmToken>> tokens_;
  std::vector<std::unique_ptr<Node>> nodes_;
  int files_ = 0;
};

// --- topology (a): one shared token -----------------------------------------------------------

TEST_F(ServeHaTest, TwoServesOnOneSharedTokenInteroperateWithOneStableDataTimestamp) {
  Node& a = AddNode("cp1");
  Node& b = AddNode("cp2", &a);
  const std::string kid = CreateActiveKey(a, "ecdsa-p256");
  StartServe(a);
  StartServe(b);
  const CallResult keys_a = WaitForKids(a, {kid});
  const CallResult keys_b = WaitForKids(b, {kid});
  // One token, one set: the same data_timestamp from both, derived from the token, not the process.
  EXPECT_EQ(keys_a.data_timestamp_seconds, keys_b.data_timestamp_seconds);
  EXPECT_EQ(keys_a.data_timestamp_nanos, keys_b.data_timestamp_nanos);
  EXPECT_GT(keys_a.data_timestamp_seconds, 1700000000);

  const SignedToken from_a = SignWith(a, kid);
  const SignedToken from_b = SignWith(b, kid);
  ExpectAllVerifyEverywhere({from_a, from_b}, "shared token");

  // A restart (after the wall clock moved on) publishes the same set with the same timestamp.
  std::this_thread::sleep_for(milliseconds(1100));
  EXPECT_EQ(a.serve->Stop(SIGTERM, seconds(20)), 0) << a.serve->Log();
  StartServe(a);
  const CallResult restarted = WaitForKids(a, {kid});
  EXPECT_EQ(restarted.data_timestamp_seconds, keys_a.data_timestamp_seconds);
  EXPECT_EQ(restarted.data_timestamp_nanos, keys_a.data_timestamp_nanos);

  // A change of the set changes it, in both serves alike.
  const std::string next = Rotate(a, "rsa-2048");
  const CallResult grown_a = WaitForKids(a, {kid, next});
  const CallResult grown_b = WaitForKids(b, {kid, next});
  EXPECT_NE(std::make_pair(grown_a.data_timestamp_seconds, grown_a.data_timestamp_nanos),
            std::make_pair(keys_a.data_timestamp_seconds, keys_a.data_timestamp_nanos));
  EXPECT_EQ(grown_a.data_timestamp_seconds, grown_b.data_timestamp_seconds);
  EXPECT_EQ(grown_a.data_timestamp_nanos, grown_b.data_timestamp_nanos);
}

// --- topology (b): one token per node ---------------------------------------------------------

TEST_F(ServeHaTest, TwoTokensEachServePublishesTheOthersKeysAndAcceptsItsTokens) {
  Node& a = AddNode("cp1");
  Node& b = AddNode("cp2");
  const std::string kid_a = CreateActiveKey(a, "ecdsa-p256");
  const std::string kid_b = CreateActiveKey(b, "rsa-2048");
  StartServe(a);
  StartServe(b);
  const SignedToken from_a = SignWith(a, kid_a);
  const SignedToken from_b = SignWith(b, kid_b);
  // Before the exchange each serve knows only its own key: the other's token does not verify.
  EXPECT_NE(VerifyWithOpenSsl(from_a.jwt, WaitForKids(b, {kid_b}).keys), "");
  EXPECT_NE(VerifyWithOpenSsl(from_b.jwt, WaitForKids(a, {kid_a}).keys), "");

  ProcessResult to_b = Import(b, Export(a));
  ASSERT_EQ(to_b.exit_code, 0) << to_b.out << to_b.err;
  EXPECT_NE(to_b.out.find("imported " + kid_a), std::string::npos) << to_b.out;
  ProcessResult to_a = Import(a, Export(b));
  ASSERT_EQ(to_a.exit_code, 0) << to_a.out << to_a.err;

  WaitForKids(a, {kid_a, kid_b});
  WaitForKids(b, {kid_a, kid_b});
  ExpectAllVerifyEverywhere({from_a, from_b, SignWith(a, kid_a), SignWith(b, kid_b)}, "after the exchange");

  // The imported keys are verify only: public halves, audited once each with the bundle named.
  const auto audited = AuditRecords(b, "sa-key-import-public");
  ASSERT_EQ(audited.size(), 1u);
  EXPECT_EQ(audited[0]["fields"]["kid"], kid_a);
  EXPECT_EQ(audited[0]["fields"]["bundle_state"], "active");
  EXPECT_EQ(audited[0]["fields"]["action"], "import");
  ProcessResult list = Kubehsm(b, {"sa", "list", "-o", "json"});
  for (const auto& k : nlohmann::json::parse(list.out)) {
    if (k["kid"] == kid_a) {
      EXPECT_EQ(k["private"], false);
      EXPECT_EQ(k["source"], "imported");
      EXPECT_EQ(k["state"], "retired");
    }
  }
  // Importing the same bundle again changes nothing it need not (idempotent), and adds no key.
  ProcessResult again = Import(b, Export(a));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(ListedKids(b), (std::set<std::string>{kid_a, kid_b}));
  // A node's own bundle imported into itself is skipped: its keys stay its own.
  ProcessResult own = Import(a, Export(a));
  ASSERT_EQ(own.exit_code, 0) << own.err;
  EXPECT_NE(own.out.find("this token's own active key"), std::string::npos) << own.out;
  EXPECT_EQ(ListedKids(a), (std::set<std::string>{kid_a, kid_b}));
}

TEST_F(ServeHaTest, RotationAcrossBothNodesNeverLeavesATokenUnverifiableOnEitherServer) {
  Node& a = AddNode("cp1");
  Node& b = AddNode("cp2");
  const std::string old_a = CreateActiveKey(a, "ecdsa-p256");
  const std::string old_b = CreateActiveKey(b, "ecdsa-p384");
  ASSERT_EQ(Import(b, Export(a)).exit_code, 0);
  ASSERT_EQ(Import(a, Export(b)).exit_code, 0);
  StartServe(a);
  StartServe(b);
  WaitForKids(a, {old_a, old_b});
  WaitForKids(b, {old_a, old_b});
  std::vector<SignedToken> tokens = {SignWith(a, old_a), SignWith(b, old_b)};
  ExpectAllVerifyEverywhere(tokens, "0: steady state");

  // 1. `sa rotate` on every node: each next key is published by its own serve only, signing
  //    stays on the old keys.
  const std::string next_a = Rotate(a, "rsa-2048");
  const std::string next_b = Rotate(b, "ecdsa-p256");
  WaitForKids(a, {old_a, old_b, next_a});
  WaitForKids(b, {old_a, old_b, next_b});
  tokens.push_back(SignWith(a, old_a));
  tokens.push_back(SignWith(b, old_b));
  ExpectAllVerifyEverywhere(tokens, "1: rotated on both nodes");

  // Activating now would make cp1 sign tokens cp2 cannot verify: refused with cp2's published set,
  // even with --force, and nothing changes.
  const fs::path b_jwks_early = SaveJwks(b);
  ProcessResult early =
      Kubehsm(a, {"sa", "activate", "--force", "--key=" + next_a, "--published-on", b_jwks_early.string()});
  EXPECT_EQ(early.exit_code, 2) << early.out << early.err;
  EXPECT_NE(early.err.find("does not publish it"), std::string::npos) << early.err;
  EXPECT_EQ(AuditRecords(a, "sa-key-activate").size(), 1u);  // only CreateActiveKey's
  tokens.push_back(SignWith(a, old_a));

  // 2. Export the next keys and import them everywhere.
  ASSERT_EQ(Import(b, Export(a)).exit_code, 0);
  ASSERT_EQ(Import(a, Export(b)).exit_code, 0);
  const std::set<std::string> all = {old_a, old_b, next_a, next_b};
  WaitForKids(a, all);
  WaitForKids(b, all);
  tokens.push_back(SignWith(a, old_a));
  tokens.push_back(SignWith(b, old_b));
  ExpectAllVerifyEverywhere(tokens, "2: next keys published everywhere");

  // 3. (One refresh interval later, which --force stands in for here.) Activate on each node,
  //    checked against the other node's published set.
  ProcessResult act_a =
      Kubehsm(a, {"sa", "activate", "--force", "--key=" + next_a, "--published-on", SaveJwks(b).string()});
  ASSERT_EQ(act_a.exit_code, 0) << act_a.out << act_a.err;
  tokens.push_back(SignWith(a, next_a));
  tokens.push_back(SignWith(b, old_b));
  ExpectAllVerifyEverywhere(tokens, "3a: cp1 activated its next key");
  ProcessResult act_b =
      Kubehsm(b, {"sa", "activate", "--force", "--key=" + next_b, "--published-on", SaveJwks(a).string()});
  ASSERT_EQ(act_b.exit_code, 0) << act_b.out << act_b.err;
  tokens.push_back(SignWith(a, next_a));
  tokens.push_back(SignWith(b, next_b));
  WaitForKids(a, all);
  WaitForKids(b, all);
  ExpectAllVerifyEverywhere(tokens, "3b: both nodes sign with their new keys");

  // 4. Later, when the old keys' tokens have expired: remove the old keys everywhere (--force
  //    stands in for the wait). Both servers then refuse exactly the same tokens: the old keys'.
  for (Node* node : {&a, &b}) {
    for (const std::string& old : {old_a, old_b}) {
      ProcessResult r = Kubehsm(*node, {"sa", "remove", "--force", "--key=" + old});
      ASSERT_EQ(r.exit_code, 0) << node->name << ": " << r.out << r.err;
    }
  }
  WaitForKids(a, {next_a, next_b});
  WaitForKids(b, {next_a, next_b});
  std::vector<SignedToken> current, expired;
  for (const auto& t : tokens) (t.kid == next_a || t.kid == next_b ? current : expired).push_back(t);
  current.push_back(SignWith(a, next_a));
  current.push_back(SignWith(b, next_b));
  ExpectAllVerifyEverywhere(current, "4: old keys removed everywhere");
  for (const auto& node : nodes_) {
    const CallResult keys = SignerClient(node->socket, "v1").FetchKeys();
    for (const auto& t : expired) EXPECT_NE(VerifyWithOpenSsl(t.jwt, keys.keys), "") << node->name << " " << t.kid;
  }
}

// --- refusals: a refused bundle imports nothing ----------------------------------------------

class ServeHaBundleRefusalTest : public ServeHaTest {
 protected:
  void SetUp() override {
    a_ = &AddNode("cp1");
    b_ = &AddNode("cp2");
    kid_a_ = CreateActiveKey(*a_, "ecdsa-p256");
    next_a_ = Rotate(*a_, "rsa-2048");
    kid_b_ = CreateActiveKey(*b_, "ecdsa-p256");
    bundle_ = nlohmann::json::parse(ReadTestFile(Export(*a_)));
    ASSERT_EQ(bundle_["keys"].size(), 2u);
  }

  // Imports `text` into cp2 and checks the refusal: exit 2, one error line naming `part`, and
  // cp2's keys and audit trail unchanged.
  void ExpectRefused(const std::string& text, const std::string& part) {
    const fs::path file = tmp_.path() / ("bad-" + std::to_string(++files_) + ".json");
    WriteTestFile(file, text);
    ProcessResult r = Import(*b_, file);
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_EQ(r.err.rfind("kubehsm: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(ListedKids(*b_), std::set<std::string>{kid_b_});
    EXPECT_TRUE(AuditRecords(*b_, "sa-key-import-public").empty());
  }

  Node* a_ = nullptr;
  Node* b_ = nullptr;
  std::string kid_a_, next_a_, kid_b_;
  nlohmann::json bundle_;
};

TEST_F(ServeHaBundleRefusalTest, BundleWithPrivateMembersIsRefused) {
  // A JWK that carries its private scalar (as a careless export of a software key would).
  for (const char* member : {"d", "p", "k"}) {
    nlohmann::json bad = bundle_;
    bad["keys"][1][member] = "AQAB";
    ExpectRefused(bad.dump(), std::string("private key member \"") + member + "\"");
  }
}

TEST_F(ServeHaBundleRefusalTest, MalformedBundlesAreRefused) {
  ExpectRefused("{\"keys\": [", "bundle");
  ExpectRefused("[]", "bundle");
  nlohmann::json jwks_only = bundle_;
  jwks_only.erase("format");  // a plain JWKS is not a bundle: it carries no key states
  ExpectRefused(jwks_only.dump(), "\"format\"");
  nlohmann::json empty = bundle_;
  empty["keys"] = nlohmann::json::array();
  ExpectRefused(empty.dump(), "\"keys\" must be a non-empty array");
  nlohmann::json bad_state = bundle_;
  bad_state["keys"][0]["state"] = "retired";
  ExpectRefused(bad_state.dump(), "\"state\" must be \"active\" or \"next\"");
  nlohmann::json bad_key = bundle_;
  bad_key["keys"][0]["x"] = "AAAA";  // a P-256 x coordinate of 3 bytes
  ExpectRefused(bad_key.dump(), "exactly 32 bytes");
  nlohmann::json bad_alg = bundle_;
  bad_alg["keys"][0]["alg"] = "HS256";
  ExpectRefused(bad_alg.dump(), "\"alg\" does not match the key");
  nlohmann::json unknown = bundle_;
  unknown["keys"][0]["x5u"] = "https://attacker.example/";
  ExpectRefused(unknown.dump(), "unknown member \"x5u\"");
  // A FIFO where the bundle belongs is refused at once, never waited on.
  const fs::path fifo = tmp_.path() / "bundle.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  ProcessResult r = Import(*b_, fifo);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("FIFO"), std::string::npos) << r.err;
  EXPECT_EQ(ListedKids(*b_), std::set<std::string>{kid_b_});
}

TEST_F(ServeHaBundleRefusalTest, KidNotDerivedFromTheKeyIsRefused) {
  // The kid of cp1's next key written over its active key: one kid names the other key.
  nlohmann::json bad = bundle_;
  ASSERT_NE(bad["keys"][0]["kid"], bad["keys"][1]["kid"]);
  bad["keys"][0]["kid"] = bad["keys"][1]["kid"];
  ExpectRefused(bad.dump(), "kid mismatch");
}

TEST_F(ServeHaBundleRefusalTest, BundleKeyCollidingWithAnotherKeyUnderTheSameKidIsRefused) {
  // cp1's key presented under the kid of the key cp2 already holds: it would shadow cp2's own key.
  nlohmann::json bad = bundle_;
  bad["keys"][0]["kid"] = kid_b_;
  ExpectRefused(bad.dump(), "collides with a different key the token already holds under that kid");
  // The same with a key cp2 imported earlier from a bundle.
  ProcessResult imported = Import(*b_, Export(*a_));
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  nlohmann::json swap = bundle_;
  swap["keys"][1]["kid"] = kid_a_;  // cp1's next key under cp1's (imported) active kid
  const fs::path file = tmp_.path() / "swap.json";
  WriteTestFile(file, swap.dump());
  ProcessResult r = Import(*b_, file);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("collides with a different key"), std::string::npos) << r.err;
}

TEST_F(ServeHaBundleRefusalTest, ImportNeedsTheConfirmationAndAnExpiry) {
  const fs::path file = Export(*a_);
  ProcessResult no_confirm = Kubehsm(*b_, {"sa", "import-public", "--bundle", file.string(), "--expires-in", "30d"});
  EXPECT_EQ(no_confirm.exit_code, 1) << no_confirm.err;
  EXPECT_NE(no_confirm.err.find("--confirm-key-outside-token"), std::string::npos) << no_confirm.err;
  ProcessResult no_expiry =
      Kubehsm(*b_, {"sa", "import-public", "--bundle", file.string(), "--confirm-key-outside-token"});
  EXPECT_EQ(no_expiry.exit_code, 1) << no_expiry.err;
  ProcessResult both = Kubehsm(*b_, {"sa", "import-public", "--bundle", file.string(), "--public-key", file.string(),
                                     "--expires-in", "30d", "--confirm-key-outside-token"});
  EXPECT_EQ(both.exit_code, 1) << both.err;
  EXPECT_EQ(ListedKids(*b_), std::set<std::string>{kid_b_});
}

TEST_F(ServeHaBundleRefusalTest, ExportHoldsPublicKeysWithStatesOnly) {
  std::set<std::string> kids;
  for (const auto& k : bundle_["keys"]) {
    kids.insert(k["kid"].get<std::string>());
    for (const char* m : {"d", "p", "q", "dp", "dq", "qi", "k"}) EXPECT_FALSE(k.contains(m)) << m;
    EXPECT_EQ(k["use"], "sig");
    EXPECT_EQ(k["state"], k["kid"] == kid_a_ ? "active" : "next");
  }
  EXPECT_EQ(kids, (std::set<std::string>{kid_a_, next_a_}));
  EXPECT_EQ(bundle_["format"], "kubehsm-sa-public-bundle/v1");
  // Imported keys are not re-exported: cp2's bundle after importing cp1's holds only cp2's key.
  ASSERT_EQ(Import(*b_, Export(*a_)).exit_code, 0);
  const auto b_bundle = nlohmann::json::parse(ReadTestFile(Export(*b_)));
  ASSERT_EQ(b_bundle["keys"].size(), 1u);
  EXPECT_EQ(b_bundle["keys"][0]["kid"], kid_b_);
  // Every import was audited, one record per key, naming the bundle.
  const auto audited = AuditRecords(*b_, "sa-key-import-public");
  EXPECT_EQ(audited.size(), 2u);
  for (const auto& rec : audited)
    EXPECT_NE(rec["fields"]["bundle"].get<std::string>().find("cp1-bundle"), std::string::npos);
}

}  // namespace
}  // namespace kubehsm::testing
