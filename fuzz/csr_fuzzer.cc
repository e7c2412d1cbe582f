// signer/pki/csr.h: PKCS#10 requests from removable media (`certs sign-csr`, `sign-dir`) and the
// signing policy they are checked against.
// Input containing "-----BEGIN" is a CSR: parsed, checked under every built-in profile and one
// custom profile (kubelet-serving with a fixed node allow-list), and signed (with a fixed EC CA)
// under each profile that accepts it. Anything
// else is a signing-policy YAML document.
// Invariants: refusals are kInvalidArgument; a request with structural problems is refused by
// every profile, its problems listed first; an accepted request's certificate carries the
// request's key, is signed by the CA, is never a CA, has the request's CN and O, SANs that are
// exactly SpecForCsr's and all among the requested ones, the profile's EKUs, and a validity no
// longer than the profile allows; a refused request is never signed (SignCsr is
// kPermissionDenied). An accepted policy's profiles all resolve by name.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "signer/pki/certificate.h"
#include "signer/pki/csr.h"

namespace {

namespace pki = kubehsm::signer::pki;
using kubehsm::StatusCode;

constexpr char kPolicy[] = R"(apiVersion: kubehsm.io/v1alpha1
kind: SigningPolicy
profiles:
- name: ingress
  ca: ca
  subject: {commonName: '[a-z0-9.-]+\.example\.com', organizations: [ops]}
  sans: {dns: ['[a-z0-9-]+\.example\.com'], ip: [10.0.0.0/8, 'fd00::/8']}
  extKeyUsages: [serverAuth]
  maxValidity: 720h
kubeletServing:
  nodes: [cp-1]
  nodePatterns: ['w[0-9]+', '([a-z0-9-]+\.?)+\.nodes\.example']
  domains: [nodes.example]
)";

struct Fixture {
  kubehsm::signer::SigningKey ca_key = kubehsm::fuzz::LoadFixedKey(kubehsm::fuzz::kEcP256KeyPem);
  pki::CsrSigningCa ca;
  pki::ClusterConfig config;
  pki::SigningPolicy policy;
  std::vector<pki::SigningProfile> profiles;
  pki::Clock::time_point now = pki::Clock::from_time_t(1767225600);

  Fixture() : ca{nullptr, kubehsm::fuzz::LoadFixedKey(kubehsm::fuzz::kEcP256KeyPem)} {
    pki::CertSpec spec;
    spec.common_name = "kubernetes";
    spec.is_ca = true;
    auto cert = pki::SelfSignCa(ca.key, spec, {now - std::chrono::hours(1), now + std::chrono::hours(87600)});
    Require(cert.status(), "SelfSignCa");
    ca.cert = std::move(*cert);
    config.node_name = "cp-1";
    config.advertise_address = "10.0.0.10";
    auto parsed = pki::ParseSigningPolicy(kPolicy);
    Require(parsed.status(), "ParseSigningPolicy");
    policy = std::move(*parsed);
    std::vector<std::string> names = pki::BuiltinSigningProfileNames();
    names.push_back("ingress");
    for (const auto& n : names) {
      auto p = pki::FindSigningProfile(n, &policy);
      Require(p.status(), "FindSigningProfile " + n);
      profiles.push_back(std::move(*p));
    }
  }

  static void Require(const kubehsm::Status& s, const std::string& what) {
    if (!s.ok()) kubehsm::fuzz::InvariantFailed(what.c_str(), s.message(), __FILE__, __LINE__);
  }
};

Fixture& F() {
  static Fixture* f = new Fixture;  // lives for the process
  return *f;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

void CheckPolicy(std::string_view text) {
  auto policy = pki::ParseSigningPolicy(text);
  if (!policy.ok()) {
    KH_FUZZ_CHECK(policy.status().code() == StatusCode::kInvalidArgument, policy.status().message());
    return;
  }
  const auto builtin = pki::BuiltinSigningProfileNames();
  for (const auto& p : policy->profiles) {
    KH_FUZZ_CHECK(!Contains(builtin, p.name), "policy redefines built-in profile " + p.name);
    auto found = pki::FindSigningProfile(p.name, &*policy);
    KH_FUZZ_CHECK(found.ok() && found->name == p.name, "policy profile " + p.name + " does not resolve");
  }
}

void CheckIssued(const X509* cert, const pki::ParsedCsr& csr, const pki::SigningProfile& profile,
                 const pki::CsrCheckContext& ctx) {
  Fixture& f = F();
  KH_FUZZ_CHECK(pki::CertificateHasKey(cert, csr.public_key.get()), profile.name + ": certificate has another key");
  KH_FUZZ_CHECK(pki::VerifyIssuedBy(cert, f.ca.cert.get()).ok(), profile.name + ": not signed by the CA");
  auto spec = pki::SpecFromCertificate(cert);
  KH_FUZZ_CHECK(spec.ok(), profile.name + ": issued certificate does not read back");
  KH_FUZZ_CHECK(!spec->is_ca, profile.name + ": issued a CA certificate");
  KH_FUZZ_CHECK(spec->common_name == csr.common_name, profile.name + ": CN differs from the request");
  KH_FUZZ_CHECK(spec->organizations == csr.organizations, profile.name + ": O differs from the request");
  KH_FUZZ_CHECK(spec->ext_key_usages == profile.ext_key_usages, profile.name + ": EKUs differ from the profile");
  KH_FUZZ_CHECK(spec->sans == pki::SpecForCsr(csr, profile).sans, profile.name + ": SANs differ from SpecForCsr");
  for (const auto& d : spec->sans.dns) KH_FUZZ_CHECK(Contains(csr.sans.dns, d), profile.name + ": DNS SAN not requested: " + d);
  for (const auto& ip : spec->sans.ips) KH_FUZZ_CHECK(Contains(csr.sans.ips, ip), profile.name + ": IP SAN not requested: " + ip);
  auto validity = pki::CertificateValidity(cert);
  KH_FUZZ_CHECK(validity.ok(), profile.name + ": no validity");
  KH_FUZZ_CHECK(validity->not_after <= f.now + pki::EffectiveValidity(profile, ctx) + std::chrono::seconds(1),
                profile.name + ": validity longer than the profile allows");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = kubehsm::fuzz::AsText(data, size);
  if (text.find("-----BEGIN") == std::string_view::npos) {
    CheckPolicy(text);
    return 0;
  }
  Fixture& f = F();
  auto csr = pki::ParseCsrPem(text);
  if (!csr.ok()) {
    KH_FUZZ_CHECK(csr.status().code() == StatusCode::kInvalidArgument, csr.status().message());
    return 0;
  }
  pki::CsrCheckContext ctx;
  ctx.config = &f.config;
  ctx.node_ips = {"10.0.0.21", "fd00::21"};
  ctx.kubelet_serving = &f.policy.kubelet_serving;
  const auto record = [](const pki::IssuedCertificate&) { return kubehsm::OkStatus(); };
  for (const auto& profile : f.profiles) {
    const std::vector<std::string> refusals = pki::CheckCsr(*csr, profile, ctx);
    if (!csr->problems.empty()) {
      KH_FUZZ_CHECK(refusals.size() >= csr->problems.size() &&
                        std::equal(csr->problems.begin(), csr->problems.end(), refusals.begin()),
                    profile.name + ": structural problems are not listed first");
    }
    if (!refusals.empty()) {
      // Signing a refused request must fail without signing (checked for one profile per input to
      // keep the target fast; CheckCsr is what SignCsr consults).
      if (&profile == &f.profiles.front()) {
        auto cert = pki::SignCsr(f.ca, *csr, profile, ctx, f.now, record, "fuzz");
        KH_FUZZ_CHECK(!cert.ok() && cert.status().code() == StatusCode::kPermissionDenied,
                      profile.name + ": a refused request was signed");
      }
      continue;
    }
    KH_FUZZ_CHECK(!pki::CheckKey(csr->public_key.get(), profile.keys).has_value(),
                  profile.name + ": accepted a key CheckKey refuses");
    auto cert = pki::SignCsr(f.ca, *csr, profile, ctx, f.now, record, "fuzz");
    KH_FUZZ_CHECK(cert.ok(), profile.name + ": an accepted request was not signed: " + cert.status().message());
    CheckIssued(cert->get(), *csr, profile, ctx);
  }
  return 0;
}
