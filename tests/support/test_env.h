// Helpers shared by kubehsm's test suites: temporary directories, running processes, and fresh
// SoftHSM tokens created through softhsm-config/create-token.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace kubehsm::testing {

// The repository root ($KUBEHSM_SOURCE_DIR, else the configured source dir).
std::filesystem::path SourceDir();

// The kubehsm binary under test ($KUBEHSM_BINARY, else the one this build made).
std::filesystem::path KubehsmBinary();

// A fresh directory under $TMPDIR, removed with its contents on destruction.
class TempDir final {
 public:
  TempDir();
  TempDir(const TempDir&) = delete;  // one owner removes the directory
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// argv and envp arrays for posix_spawn, owning their strings: `argv` as given, and the current
// environment with `env` added (an entry in `env` replaces the inherited one of the same name).
class SpawnArgs final {
 public:
  SpawnArgs(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env);
  SpawnArgs(const SpawnArgs&) = delete;  // the pointer arrays point into this object
  SpawnArgs& operator=(const SpawnArgs&) = delete;
  char* const* argv() { return argv_ptrs_.data(); }
  char* const* envp() { return env_ptrs_.data(); }

 private:
  std::vector<std::string> argv_, env_;
  std::vector<char*> argv_ptrs_, env_ptrs_;
};

struct ProcessResult {
  int exit_code = -1;  // 128+signal when killed by a signal
  std::string out;
  std::string err;
};

// Runs argv[0] (searched in PATH) with `argv`, extra environment `env` added to the current one,
// and `stdin_data` on its standard input. Blocks until it exits.
ProcessResult RunProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
                         const std::string& stdin_data = "");

// Writes a file (creating parents) with the given mode; aborts the test on failure.
void WriteTestFile(const std::filesystem::path& path, const std::string& data, int mode = 0600);
std::string ReadTestFile(const std::filesystem::path& path);

// A SoftHSM token in its own fresh directory, made with softhsm-config/create-token. The process
// environment's SOFTHSM2_CONF points at it while it lives (set before any module is loaded).
class SoftHsmToken final {
 public:
  // Creates the token `label` with random user and SO PINs stored in files under the directory.
  explicit SoftHsmToken(const std::string& label = "kubehsm-test");
  SoftHsmToken(const SoftHsmToken&) = delete;  // owns a directory and the environment variable
  SoftHsmToken& operator=(const SoftHsmToken&) = delete;
  ~SoftHsmToken();

  const std::string& label() const { return label_; }
  const std::string& user_pin() const { return user_pin_; }
  std::filesystem::path dir() const { return dir_.path(); }
  std::filesystem::path conf_path() const { return dir_.path() / "softhsm2.conf"; }
  std::filesystem::path user_pin_file() const { return dir_.path() / "user.pin"; }
  std::string module_path() const;
  // "pkcs11:token=<label>"
  std::string token_uri() const;
  // A kubehsm.conf naming module, token and pin-source=file:<user.pin>; returns its path.
  std::filesystem::path WriteKubehsmConfig() const;
  // Environment for child processes: SOFTHSM2_CONF and KUBEHSM_CONFIG.
  std::map<std::string, std::string> ChildEnv() const;

 private:
  TempDir dir_;
  std::string label_;
  std::string user_pin_;
};

}  // namespace kubehsm::testing
