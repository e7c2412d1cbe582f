// Internal YAML helpers shared by cluster_config.cc and kubeconfig.cc (not part of the pki API):
// guarded loading of untrusted YAML with yaml-cpp, and an emitter that writes the layout of Go's
// sigs.k8s.io/yaml (gopkg.in/yaml.v2), which is what client-go's clientcmd.Write produces.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include "common/status.h"

namespace kubehsm::signer::pki::yaml_internal {

inline constexpr std::size_t kMaxYamlBytes = 1 << 20;  // 1 MiB
inline constexpr int kMaxYamlDepth = 64;
// Upper bound on nodes visited per load; aliases can make a small file a huge (or cyclic) graph.
inline constexpr std::size_t kMaxYamlNodes = 200000;

// Whether LoadYamlDocuments refuses a mapping that repeats a key. yaml-cpp keeps both entries and
// lookups see the first, while Go's YAML readers (kubectl, client-go) keep the last: accepting
// such a file would mean kubehsm and the cluster read different values from it.
enum class DuplicateKeys {
  kRefuse,
  kCallerChecks,  // the caller's schema walk refuses them with its own, path-qualified message
};

// Parses `text` (one or more documents) into yaml-cpp nodes. Never throws: yaml-cpp exceptions
// become kInvalidArgument "<what>: line L, column C: <reason>". Fails when `text` exceeds
// kMaxYamlBytes, a document nests deeper than kMaxYamlDepth, (through aliases) expands to more
// than kMaxYamlNodes nodes, a mapping key is not a scalar (null, sequence, map), or (kRefuse) a
// mapping repeats a key. `what` names the input in messages (e.g. "kubeadm config").
Result<std::vector<YAML::Node>> LoadYamlDocuments(std::string_view text, std::string_view what,
                                                  DuplicateKeys duplicates = DuplicateKeys::kRefuse);

// Renders a string the way go-yaml v2 does: plain when a plain scalar would read back as the same
// string, double-quoted when it would resolve to another type (null, bool, number) or holds
// control characters, single-quoted otherwise.
std::string QuoteYamlString(std::string_view s);

// Serialises a document in go-yaml v2 block style (2-space indent, sequences under a key not
// indented, `{}`/`[]` for empty collections), keeping map key order. Scalars that were plain in
// the source stay plain (so they keep their type); quoted or programmatically set ones go through
// QuoteYamlString. Fails (kInvalidArgument) on non-scalar map keys or graphs deeper than
// kMaxYamlDepth (cycles).
Result<std::string> EmitGoYaml(const YAML::Node& doc);

// "line L, column C" (1-based) for a node's position, or "" when yaml-cpp has none.
std::string NodePosition(const YAML::Node& node);

}  // namespace kubehsm::signer::pki::yaml_internal
