// What the Debian package ships beside the binary, checked against the binary itself: the bash
// completion (packaging/gen-completion) must offer exactly the commands, subcommands and options
// the --help texts list; every man page (packaging/gen-man, help2man) must render with man and
// name every subcommand and option; and the help texts must not contradict themselves.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/test_env.h"

namespace kubehsm::testing {
namespace {

namespace fs = std::filesystem;

// The binary's --help for `args`, with no config file read.
std::string Help(std::vector<std::string> args) {
  args.insert(args.begin(), KubehsmBinary().string());
  args.push_back("--help");
  ProcessResult r = RunProcess(args, {{"KUBEHSM_CONFIG", "/dev/null"}});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The first words of the "  name  summary" lines under `header` ("Commands:", "Subcommands:").
std::vector<std::string> SectionNames(const std::string& text, const std::string& header) {
  std::vector<std::string> names;
  bool on = false;
  for (const std::string& line : Lines(text)) {
    if (line == header) {
      on = true;
      continue;
    }
    if (!on) continue;
    if (line.empty()) break;
    std::smatch m;
    if (std::regex_search(line, m, std::regex("^  ([a-z][a-z-]*)"))) names.push_back(m[1]);
  }
  return names;
}

// The text before the "Global options" block (a command's own options).
std::string OwnPart(const std::string& help) { return help.substr(0, help.find("\nGlobal options")); }

// The --long options a help text lists (Boost's "  --name arg" and "  -o [ --output ] arg" lines).
std::set<std::string> Options(const std::string& text) {
  std::set<std::string> opts;
  static const std::regex kOption("^  (?:-[a-zA-Z] \\[ )?(--[a-z0-9-]+)");
  for (const std::string& line : Lines(text)) {
    std::smatch m;
    if (std::regex_search(line, m, kOption)) opts.insert(m[1]);
  }
  return opts;
}

// `text` with every run of white space made one space (Boost wraps option descriptions).
std::string Flat(const std::string& text) { return std::regex_replace(text, std::regex("\\s+"), " "); }

std::set<std::string> Words(const std::string& text) {
  std::set<std::string> words;
  std::istringstream in(text);
  for (std::string w; in >> w;) words.insert(w);
  return words;
}

// COMPREPLY for the command line `words` (the last one being completed), from the generated script.
std::set<std::string> Complete(const std::vector<std::string>& words) {
  std::string array;
  for (const auto& w : words) array += " '" + w + "'";
  const std::string script = "source \"$1\"; COMP_WORDS=(" + array +
                             "); COMP_CWORD=" + std::to_string(words.size() - 1) +
                             "; _kubehsm; printf '%s\\n' \"${COMPREPLY[@]}\"";
  ProcessResult r = RunProcess({"bash", "-c", script, "bash", KUBEHSM_TEST_COMPLETION});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  return Words(r.out);
}

// Commands with subcommands, each with its subcommand names, from the binary.
std::map<std::string, std::vector<std::string>> Groups() {
  std::map<std::string, std::vector<std::string>> groups;
  for (const auto& cmd : SectionNames(Help({}), "Commands:")) {
    if (cmd == "version") continue;
    auto subs = SectionNames(Help({cmd}), "Subcommands:");
    groups[cmd] = subs;
  }
  return groups;
}

TEST(CompletionTest, OffersEveryCommandSubcommandAndOptionTheHelpTextsList) {
  const auto commands = SectionNames(Help({}), "Commands:");
  ASSERT_GE(commands.size(), 9u);
  EXPECT_EQ(Complete({"kubehsm", ""}), std::set<std::string>(commands.begin(), commands.end()));
  const auto groups = Groups();
  ASSERT_GE(groups.at("certs").size(), 5u);  // the help parser found the subcommands at all
  const auto globals = Options(Help({}));
  for (const auto& [cmd, subs] : groups) {
    if (subs.empty()) {
      // A command without subcommands: its options.
      const auto opts = Options(OwnPart(Help({cmd})));
      const auto offered = Complete({"kubehsm", cmd, "--"});
      for (const auto& o : opts) EXPECT_TRUE(offered.count(o)) << "kubehsm " << cmd << " " << o;
      continue;
    }
    EXPECT_EQ(Complete({"kubehsm", cmd, ""}), std::set<std::string>(subs.begin(), subs.end())) << cmd;
    for (const auto& sub : subs) {
      const auto opts = Options(OwnPart(Help({cmd, sub})));
      const auto offered = Complete({"kubehsm", cmd, sub, "--"});
      for (const auto& o : opts) EXPECT_TRUE(offered.count(o)) << "kubehsm " << cmd << " " << sub << " " << o;
      // Global options are offered after the subcommand too (they may follow the command).
      EXPECT_TRUE(offered.count("--hsm-config")) << cmd << " " << sub;
      // Nothing that is not an option of this subcommand or a global one.
      for (const auto& o : offered) {
        EXPECT_TRUE(opts.count(o) || globals.count(o) || o == "--help" || o == "--version")
            << "kubehsm " << cmd << " " << sub << " offers " << o;
      }
    }
  }
  EXPECT_EQ(Complete({"kubehsm", "init", "phase", ""}), (std::set<std::string>{"ca", "sa", "certs", "kubeconfig"}));
  EXPECT_TRUE(Complete({"kubehsm", "init", "phase", "ca", "--cert"}).count("--cert-dir"));
}

TEST(CompletionTest, SkipsGlobalOptionValuesAndCompletesFileNamesForOptionValues) {
  // The value of a global option is not taken for the command word.
  EXPECT_EQ(Complete({"kubehsm", "--hsm-config", "/etc/kubehsm/kubehsm.conf", "-v", "keys", ""}),
            (std::set<std::string>{"generate", "list", "pubkey"}));
  EXPECT_EQ(Complete({"kubehsm", "--module=/usr/lib/softhsm/libsofthsm2.so", "ke"}), std::set<std::string>{"keys"});
  TempDir dir;
  WriteTestFile(dir.path() / "node1.csr", "x");
  WriteTestFile(dir.path() / "node2.csr", "x");
  const std::string prefix = (dir.path() / "no").string();
  EXPECT_EQ(Complete({"kubehsm", "certs", "sign-csr", "--csr", prefix}),
            (std::set<std::string>{(dir.path() / "node1.csr").string(), (dir.path() / "node2.csr").string()}));
  EXPECT_EQ(Complete({"kubehsm", "--hsm-config", prefix}),
            (std::set<std::string>{(dir.path() / "node1.csr").string(), (dir.path() / "node2.csr").string()}));
  // A switch takes no value: what follows it is an option again.
  EXPECT_TRUE(Complete({"kubehsm", "pki", "verify", "--check-token", "--cert"}).count("--cert-dir"));
}

TEST(ManPageTest, EveryCommandHasAPageThatRendersItsSubcommandsAndOptions) {
  const fs::path dir = KUBEHSM_TEST_MAN_DIR;
  // LC_ALL=C: groff prints ASCII hyphens, so option names can be searched for.
  auto render = [&](const std::string& page) {
    const fs::path file = dir / (page + ".1.gz");
    EXPECT_TRUE(fs::exists(file)) << file;
    ProcessResult r = RunProcess({"man", "-l", file.string()},
                                 {{"LC_ALL", "C"}, {"MANWIDTH", "200"}, {"MANPAGER", "cat"}, {"PAGER", "cat"}});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  };
  const std::string top = render("kubehsm");
  EXPECT_NE(top.find("KUBEHSM(1)"), std::string::npos) << top;
  for (const auto& o : Options(Help({}))) EXPECT_NE(top.find(o), std::string::npos) << "kubehsm(1) lacks " << o;
  for (const auto& [cmd, subs] : Groups()) {
    const std::string page = render("kubehsm-" + cmd);
    std::string title = "KUBEHSM-" + cmd;
    std::transform(title.begin(), title.end(), title.begin(), ::toupper);
    EXPECT_NE(page.find(title + "(1)"), std::string::npos) << page.substr(0, 200);
    EXPECT_NE(page.find("kubehsm(1)"), std::string::npos) << "SEE ALSO of kubehsm-" << cmd;
    if (subs.empty()) {
      for (const auto& o : Options(OwnPart(Help({cmd})))) {
        EXPECT_NE(page.find(o), std::string::npos) << "kubehsm-" << cmd << "(1) lacks " << o;
      }
    }
    for (const auto& sub : subs) {
      EXPECT_NE(page.find("kubehsm " + cmd + " " + sub + ":"), std::string::npos)
          << "kubehsm-" << cmd << "(1) lacks " << sub;
      for (const auto& o : Options(OwnPart(Help({cmd, sub})))) {
        EXPECT_NE(page.find(o), std::string::npos) << "kubehsm-" << cmd << "(1) lacks " << sub << " " << o;
      }
    }
  }
}

// An option's entry in a Boost help text: its first line and the indented continuation lines.
std::vector<std::string> OptionEntries(const std::string& text) {
  std::vector<std::string> entries;
  for (const std::string& line : Lines(text)) {
    if (std::regex_search(line, std::regex("^  -"))) {
      entries.push_back(line);
    } else if (!entries.empty() && line.rfind("      ", 0) == 0) {
      entries.back() += " " + line;
    } else {
      entries.emplace_back();
    }
  }
  return entries;
}

TEST(HelpTextTest, NoOptionShowsTwoDefaults) {
  // Boost prints a default_value as "(=VALUE)"; a text that states its own default as well says
  // two things (init --cert-dir said "(=/etc/kubernetes/pki)" and "default: the config's certificatesDir").
  std::vector<std::vector<std::string>> commands = {{}, {"init"}, {"init", "phase", "ca"}, {"serve"}};
  for (const auto& [cmd, subs] : Groups()) {
    for (const auto& sub : subs) commands.push_back({cmd, sub});
  }
  for (const auto& args : commands) {
    for (const auto& entry : OptionEntries(Help(args))) {
      const bool boost_default = entry.find("(=") != std::string::npos;
      const bool text_default = entry.find("default") != std::string::npos;
      EXPECT_FALSE(boost_default && text_default) << "kubehsm " << ::testing::PrintToString(args) << ": " << entry;
    }
  }
  const std::string init = Flat(Help({"init"}));
  EXPECT_NE(init.find("written; default: the config's certificatesDir with --config, else /etc/kubernetes/pki"),
            std::string::npos)
      << init;
}

TEST(HelpTextTest, CertsIssueOverwriteDoesNotPromiseToCreateACaKey) {
  const std::string issue = Flat(OwnPart(Help({"certs", "issue"})));
  EXPECT_EQ(issue.find("create a missing CA key"), std::string::npos) << issue;
  EXPECT_NE(issue.find("never creates, re-issues or deletes a CA"), std::string::npos) << issue;
  // init does create a missing CA key with --overwrite, and says so.
  EXPECT_NE(Flat(Help({"init"})).find("create a missing CA key"), std::string::npos);
}

TEST(HelpTextTest, GroupSummariesNameTheirSubcommands) {
  const std::string top = Help({});
  for (const std::string group : {"keys", "token", "ledger", "audit"}) {
    std::smatch m;
    ASSERT_TRUE(std::regex_search(top, m, std::regex("\n  " + group + " +[^\n]*: ([^\n]*)\n"))) << top;
    const auto subs = SectionNames(Help({group}), "Subcommands:");
    std::set<std::string> listed;
    for (const auto& w : Words(std::regex_replace(std::string(m[1]), std::regex(","), " "))) listed.insert(w);
    EXPECT_EQ(listed, std::set<std::string>(subs.begin(), subs.end())) << group << ": " << m[0];
  }
}

TEST(HelpTextTest, CreateTokenHelpIsItsCommentBlockOnly) {
  ProcessResult r = RunProcess({(SourceDir() / "softhsm-config/create-token").string(), "--help"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("set -euo pipefail"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("#"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Usage: create-token --dir DIR [--label LABEL]"), std::string::npos) << r.out;
  const auto lines = Lines(r.out);
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines.back().find("create-token"), std::string::npos) << "last line: " << lines.back();
  // Through a symlink (as a package might link it into PATH) it prints the same.
  TempDir dir;
  fs::create_symlink(SourceDir() / "softhsm-config/create-token", dir.path() / "kubehsm-create-token");
  ProcessResult linked = RunProcess({(dir.path() / "kubehsm-create-token").string(), "--help"});
  EXPECT_EQ(linked.exit_code, 0) << linked.err;
  EXPECT_EQ(linked.out, r.out);
}

}  // namespace
}  // namespace kubehsm::testing
