// The kubeadm-like flags shared by `kubehsm init [phase ...]` and `kubehsm certs issue`, and their
// translation into signer::pki::PkiOptions.
#pragma once

#include <string>

#include <boost/program_options.hpp>

#include "cli/command.h"
#include "common/status.h"
#include "signer/pki/init.h"

namespace kubehsm::cli {

// --config, --cert-dir, --kubeconfig-dir, --node-name, --advertise-address (and
// --apiserver-advertise-address), --apiserver-bind-port, --control-plane-endpoint, --service-cidr,
// --service-dns-domain, --apiserver-cert-extra-sans, --encryption-algorithm, --kubernetes-version
// (overrides the config's kubernetesVersion), --overwrite (its help says what it repairs in
// `command`: init creates and re-issues CAs, certs issue only copies their certificates).
enum class FlagsFor { kInit, kCertsIssue };
boost::program_options::options_description ClusterConfigFlags(const std::string& title, FlagsFor command);

// Builds PkiOptions from the flags of ClusterConfigFlags (config file first, flags on top; the cert
// dir defaults to the config's certificatesDir when --config is given); progress lines go to
// ctx.out(). The recorder (options.record) is left empty: see cli/issuance_recorder.h. Fails with
// the config's error (kInvalidArgument naming the field).
Result<signer::pki::PkiOptions> PkiOptionsFromFlags(Context& ctx, const boost::program_options::variables_map& vm);

}  // namespace kubehsm::cli
