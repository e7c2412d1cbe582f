#include "signer/pki/yaml_util.h"

#include <exception>
#include <regex>
#include <sstream>
#include <string>
#include <unordered_set>
#include <utility>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

namespace kubehsm::signer::pki::yaml_internal {
namespace {

// yaml-cpp 0.7's LoadAll never returns for some invalid input (e.g. a lone ","): the parser
// reports an empty document without consuming the offending token, again and again, allocating a
// node each time until memory runs out (jbeder/yaml-cpp#1040, fixed upstream by #1319 after
// 0.8.0; found by fuzz/kubeadm_config_fuzzer). This event handler sees whether a document starts
// where the previous one started, i.e. the parser made no progress.
class ProgressCheck final : public YAML::EventHandler {
 public:
  bool stuck() const { return stuck_; }
  const YAML::Mark& mark() const { return last_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    stuck_ = started_ && mark.pos == last_.pos;
    started_ = true;
    last_ = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  bool started_ = false;
  bool stuck_ = false;
  YAML::Mark last_ = YAML::Mark::null_mark();
};

// Walks a loaded document to enforce the depth and node-count limits. Aliases make the node graph
// a DAG (or even a cycle: yaml-cpp registers `&a [*a]` before the sequence ends), so the walk is
// bounded by the budget rather than by the text size.
Status CheckShape(const YAML::Node& node, int depth, std::size_t& budget, std::string_view what,
                  DuplicateKeys duplicates) {
  if (depth > kMaxYamlDepth) {
    std::string pos = NodePosition(node);
    return InvalidArgument(std::string(what) + ": nesting deeper than " + std::to_string(kMaxYamlDepth) + " levels" +
                           (pos.empty() ? "" : " at " + pos));
  }
  if (budget == 0) {
    return InvalidArgument(std::string(what) + ": document too large after alias expansion (more than " +
                           std::to_string(kMaxYamlNodes) + " nodes)");
  }
  --budget;
  if (node.IsSequence()) {
    for (const auto& child : node) KH_RETURN_IF_ERROR(CheckShape(child, depth + 1, budget, what, duplicates));
  } else if (node.IsMap()) {
    std::unordered_set<std::string> keys;
    for (const auto& kv : node) {
      // Kubernetes reads YAML as JSON, whose keys are strings; a null or collection key has no
      // meaning there and cannot be written back.
      if (!kv.first.IsScalar()) {
        std::string pos = NodePosition(kv.first);
        return InvalidArgument(std::string(what) + ": a mapping key " + (pos.empty() ? "" : "at " + pos + " ") +
                               "is " + (kv.first.IsNull() ? "empty (null)" : "not a string"));
      }
      if (duplicates == DuplicateKeys::kRefuse && !keys.insert(kv.first.Scalar()).second) {
        std::string pos = NodePosition(kv.first);
        return InvalidArgument(std::string(what) + ": duplicate key \"" + kv.first.Scalar() + "\"" +
                               (pos.empty() ? "" : " at " + pos) +
                               " (YAML readers disagree on which value counts; keep one)");
      }
      KH_RETURN_IF_ERROR(CheckShape(kv.first, depth + 1, budget, what, duplicates));
      KH_RETURN_IF_ERROR(CheckShape(kv.second, depth + 1, budget, what, duplicates));
    }
  }
  return OkStatus();
}

bool IsBlankOrEnd(std::string_view s, std::size_t i) { return i >= s.size() || s[i] == ' ' || s[i] == '\t'; }

// Mirrors libyaml's yaml_emitter_analyze_scalar for block context: may `s` be written plain?
bool PlainAllowed(std::string_view s) {
  if (s.empty()) return false;
  if (s.size() >= 3 && (s.substr(0, 3) == "---" || s.substr(0, 3) == "...")) return false;
  if (s.front() == ' ' || s.back() == ' ') return false;
  const std::string_view always_indicators = "#,[]{}&*!|>'\"%@`";
  if (always_indicators.find(s.front()) != std::string_view::npos) return false;
  if ((s.front() == '?' || s.front() == ':' || s.front() == '-') && IsBlankOrEnd(s, 1)) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return false;
    if (i > 0 && c == ':' && IsBlankOrEnd(s, i + 1)) return false;
    if (i > 0 && c == '#' && s[i - 1] == ' ') return false;
  }
  return true;
}

// Would a plain scalar `s` resolve to something other than a string under YAML 1.1 as go-yaml v2
// reads it (null, bool, int, float, merge key, base-60 float)?
bool ResolvesToNonString(std::string_view s) {
  static const char* const kWords[] = {
      "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
      "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
      ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN", "<<"};
  for (const char* w : kWords) {
    if (s == w) return true;
  }
  if (s.empty()) return true;
  const char c = s.front();
  if (!((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')) return false;
  // Integers (Go's ParseInt with base 0: 0x, 0o, 0b, leading-zero octal, underscores), floats
  // (ParseFloat, including inf/nan spellings), and go-yaml's base-60 floats.
  static const std::regex kNumber(
      R"(^[-+]?(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?|\.[0-9_]+([eE][-+]?[0-9]+)?|[iI][nN][fF]([iI][nN][iI][tT][yY])?|[nN][aA][nN]|[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?)$)");
  return std::regex_match(s.begin(), s.end(), kNumber);
}

std::string DoubleQuote(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out = "\"";
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\0': out += "\\0"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\x";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  return out;
}

std::string SingleQuote(std::string_view s) {
  std::string out = "'";
  for (char ch : s) {
    if (ch == '\'') out += '\'';
    out += ch;
  }
  out += '\'';
  return out;
}

bool HasControl(std::string_view s) {
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

class GoYamlEmitter {
 public:
  Result<std::string> Emit(const YAML::Node& doc) {
    if (doc.IsMap() && doc.size() > 0) {
      KH_RETURN_IF_ERROR(EmitMap(doc, 0, false, 0));
    } else if (doc.IsSequence() && doc.size() > 0) {
      KH_RETURN_IF_ERROR(EmitSeq(doc, 0, false, 0));
    } else {
      KH_ASSIGN_OR_RETURN(std::string inline_form, Inline(doc));
      out_ += inline_form + "\n";
    }
    return std::move(out_);
  }

 private:
  static bool IsBlockCollection(const YAML::Node& n) { return (n.IsMap() || n.IsSequence()) && n.size() > 0; }

  // Scalars, nulls and empty collections, written on the current line.
  static Result<std::string> Inline(const YAML::Node& n) {
    if (n.IsMap()) return std::string("{}");
    if (n.IsSequence()) return std::string("[]");
    if (!n.IsScalar()) return std::string("null");
    const std::string& tag = n.Tag();
    const std::string& v = n.Scalar();
    if (tag == "?") {
      // Plain in the source: keep it plain so it keeps its resolved type (1, true, ...).
      if (PlainAllowed(v) || v.empty()) return v.empty() ? std::string("\"\"") : v;
      return QuoteYamlString(v);
    }
    if (tag.empty() || tag == "!") return QuoteYamlString(v);
    return "!<" + tag + "> " + QuoteYamlString(v);
  }

  Status EmitMap(const YAML::Node& map, int indent, bool first_inline, int depth) {
    if (depth > kMaxYamlDepth) return InvalidArgument("yaml: nesting deeper than " + std::to_string(kMaxYamlDepth));
    bool first = true;
    for (const auto& kv : map) {
      if (!kv.first.IsScalar()) return InvalidArgument("yaml: cannot write a non-scalar map key");
      if (!(first && first_inline)) out_.append(static_cast<std::size_t>(indent), ' ');
      first = false;
      KH_ASSIGN_OR_RETURN(std::string key, Inline(kv.first));
      out_ += key + ":";
      const YAML::Node& v = kv.second;
      if (v.IsMap() && v.size() > 0) {
        out_ += "\n";
        KH_RETURN_IF_ERROR(EmitMap(v, indent + 2, false, depth + 1));
      } else if (v.IsSequence() && v.size() > 0) {
        out_ += "\n";
        KH_RETURN_IF_ERROR(EmitSeq(v, indent, false, depth + 1));
      } else {
        KH_ASSIGN_OR_RETURN(std::string value, Inline(v));
        out_ += " " + value + "\n";
      }
    }
    return OkStatus();
  }

  Status EmitSeq(const YAML::Node& seq, int indent, bool first_inline, int depth) {
    if (depth > kMaxYamlDepth) return InvalidArgument("yaml: nesting deeper than " + std::to_string(kMaxYamlDepth));
    bool first = true;
    for (const auto& item : seq) {
      if (!(first && first_inline)) out_.append(static_cast<std::size_t>(indent), ' ');
      first = false;
      out_ += "- ";
      if (item.IsMap() && item.size() > 0) {
        KH_RETURN_IF_ERROR(EmitMap(item, indent + 2, true, depth + 1));
      } else if (item.IsSequence() && item.size() > 0) {
        KH_RETURN_IF_ERROR(EmitSeq(item, indent + 2, true, depth + 1));
      } else {
        KH_ASSIGN_OR_RETURN(std::string value, Inline(item));
        out_ += value + "\n";
      }
    }
    return OkStatus();
  }

  std::string out_;
};

}  // namespace

std::string NodePosition(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null() || mark.line < 0) return "";
  return "line " + std::to_string(mark.line + 1) + ", column " + std::to_string(mark.column + 1);
}

Result<std::vector<YAML::Node>> LoadYamlDocuments(std::string_view text, std::string_view what,
                                                  DuplicateKeys duplicates) {
  if (text.size() > kMaxYamlBytes) {
    return InvalidArgument(std::string(what) + ": " + std::to_string(text.size()) + " bytes exceeds the limit of " +
                           std::to_string(kMaxYamlBytes) + " bytes");
  }
  std::vector<YAML::Node> docs;
  try {
    // First pass over the events only: refuse input on which LoadAll would loop (see ProgressCheck).
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    ProgressCheck progress;
    while (parser.HandleNextDocument(progress)) {
      if (progress.stuck()) {
        return InvalidArgument(std::string(what) + ": invalid YAML: line " + std::to_string(progress.mark().line + 1) +
                               ", column " + std::to_string(progress.mark().column + 1) + ": unexpected character");
      }
    }
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::DeepRecursion& e) {
    return InvalidArgument(std::string(what) + ": nesting deeper than " + std::to_string(kMaxYamlDepth) +
                           " levels at line " + std::to_string(e.mark.line + 1));
  } catch (const YAML::Exception& e) {
    std::string where = e.mark.is_null() ? std::string()
                                         : "line " + std::to_string(e.mark.line + 1) + ", column " +
                                               std::to_string(e.mark.column + 1) + ": ";
    return InvalidArgument(std::string(what) + ": invalid YAML: " + where + e.msg);
  } catch (const std::exception& e) {
    return InvalidArgument(std::string(what) + ": invalid YAML: " + e.what());
  }
  std::size_t budget = kMaxYamlNodes;
  for (const auto& doc : docs) KH_RETURN_IF_ERROR(CheckShape(doc, 0, budget, what, duplicates));
  return docs;
}

std::string QuoteYamlString(std::string_view s) {
  if (HasControl(s) || ResolvesToNonString(s)) return DoubleQuote(s);
  if (PlainAllowed(s)) return std::string(s);
  return SingleQuote(s);
}

Result<std::string> EmitGoYaml(const YAML::Node& doc) {
  try {
    GoYamlEmitter emitter;
    return emitter.Emit(doc);
  } catch (const std::exception& e) {
    return Internal(std::string("yaml: cannot write document: ") + e.what());
  }
}

}  // namespace kubehsm::signer::pki::yaml_internal
