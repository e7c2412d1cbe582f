#include "tests/support/test_env.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <system_error>

#include <gtest/gtest.h>

extern char** environ;

namespace kubehsm::testing {
namespace fs = std::filesystem;

fs::path SourceDir() {
  const char* d = std::getenv("KUBEHSM_SOURCE_DIR");
  return d != nullptr ? fs::path(d) : fs::path(KUBEHSM_TEST_SOURCE_DIR);
}

fs::path KubehsmBinary() {
  const char* b = std::getenv("KUBEHSM_BINARY");
  return b != nullptr ? fs::path(b) : fs::path(KUBEHSM_TEST_BINARY);
}

TempDir::TempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp != nullptr ? tmp : "/tmp") + "/kubehsm-test-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) std::abort();
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

SpawnArgs::SpawnArgs(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env)
    : argv_(argv) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos) merged[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : env) merged[k] = v;
  for (const auto& [k, v] : merged) env_.push_back(k + "=" + v);
  for (auto& a : argv_) argv_ptrs_.push_back(a.data());
  argv_ptrs_.push_back(nullptr);
  for (auto& e : env_) env_ptrs_.push_back(e.data());
  env_ptrs_.push_back(nullptr);
}

ProcessResult RunProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                         const std::string& stdin_data) {
  ProcessResult result;
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe failed";
    return result;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);

  SpawnArgs spawn(argv, env);

  pid_t pid = 0;
  int rc = posix_spawnp(&pid, spawn.argv()[0], &fa, nullptr, spawn.argv(), spawn.envp());
  posix_spawn_file_actions_destroy(&fa);
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(in_pipe[1]);
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    ADD_FAILURE() << "cannot start " << argv[0] << ": " << rc;
    return result;
  }
  // Feed stdin and drain stdout/stderr without deadlocking.
  size_t written = 0;
  int in_fd = in_pipe[1];
  if (stdin_data.empty()) {
    ::close(in_fd);
    in_fd = -1;
  } else {
    ::fcntl(in_fd, F_SETFL, O_NONBLOCK);
  }
  bool out_open = true, err_open = true;
  char buf[65536];
  while (out_open || err_open || in_fd >= 0) {
    pollfd fds[3];
    int n = 0;
    int out_i = -1, err_i = -1, in_i = -1;
    if (out_open) {
      fds[n] = {out_pipe[0], POLLIN, 0};
      out_i = n++;
    }
    if (err_open) {
      fds[n] = {err_pipe[0], POLLIN, 0};
      err_i = n++;
    }
    if (in_fd >= 0) {
      fds[n] = {in_fd, POLLOUT, 0};
      in_i = n++;
    }
    if (::poll(fds, static_cast<nfds_t>(n), -1) < 0) break;
    auto drain = [&](int idx, int fd, std::string& sink, bool& open) {
      if (idx < 0 || fds[idx].revents == 0) return;
      ssize_t r = ::read(fd, buf, sizeof(buf));
      if (r <= 0) {
        open = false;
      } else {
        sink.append(buf, static_cast<size_t>(r));
      }
    };
    drain(out_i, out_pipe[0], result.out, out_open);
    drain(err_i, err_pipe[0], result.err, err_open);
    if (in_i >= 0 && fds[in_i].revents != 0) {
      ssize_t w = ::write(in_fd, stdin_data.data() + written, stdin_data.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if (w < 0 || written == stdin_data.size()) {
        ::close(in_fd);
        in_fd = -1;
      }
    }
  }
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

void WriteTestFile(const fs::path& path, const std::string& data, int mode) {
  if (!path.parent_path().empty()) fs::create_directories(path.parent_path());
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    ASSERT_TRUE(f.good()) << "cannot write " << path;
    f << data;
  }
  fs::permissions(path, static_cast<fs::perms>(mode));
}

std::string ReadTestFile(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

namespace {
std::string RandomDigits(int n) {
  std::random_device rd;
  std::string s;
  for (int i = 0; i < n; ++i) s += static_cast<char>('0' + rd() % 10);
  return s;
}
}  // namespace

SoftHsmToken::SoftHsmToken(const std::string& label) : label_(label), user_pin_(RandomDigits(12)) {
  WriteTestFile(dir_.path() / "user.pin", user_pin_ + "\n");
  WriteTestFile(dir_.path() / "so.pin", RandomDigits(12) + "\n");
  ProcessResult r = RunProcess(
      {(SourceDir() / "softhsm-config/create-token").string(), "--dir", dir_.path().string(), "--label", label_},
      {{"KUBEHSM_BIN", KubehsmBinary().string()},
       {"KUBEHSM_USER_PIN_FILE", (dir_.path() / "user.pin").string()},
       {"KUBEHSM_SO_PIN_FILE", (dir_.path() / "so.pin").string()}});
  if (r.exit_code != 0) {
    ADD_FAILURE() << "create-token failed (" << r.exit_code << "): " << r.out << r.err;
  }
  ::setenv("SOFTHSM2_CONF", conf_path().c_str(), 1);
}

SoftHsmToken::~SoftHsmToken() { ::unsetenv("SOFTHSM2_CONF"); }

std::string SoftHsmToken::module_path() const { return KUBEHSM_DEFAULT_MODULE; }

std::string SoftHsmToken::token_uri() const { return "pkcs11:token=" + label_; }

fs::path SoftHsmToken::WriteKubehsmConfig() const {
  fs::path p = dir_.path() / "kubehsm.conf";
  WriteTestFile(p, "module = " + module_path() + "\ntoken = " + token_uri() +
                       "\npin-source = file:" + user_pin_file().string() + "\n");
  return p;
}

std::map<std::string, std::string> SoftHsmToken::ChildEnv() const {
  return {{"SOFTHSM2_CONF", conf_path().string()}, {"KUBEHSM_CONFIG", (dir_.path() / "kubehsm.conf").string()}};
}

}  // namespace kubehsm::testing
