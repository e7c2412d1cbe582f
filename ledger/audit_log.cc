#include "ledger/audit_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <system_error>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "common/file_util.h"

namespace kubehsm::ledger {
namespace {

const std::string kGenesis(64, '0');
constexpr std::string_view kHashKey = ",\"hash\":\"";

std::string Sha256Hex(const std::string& data) {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(d[md[i] >> 4]);
    out.push_back(d[md[i] & 15]);
  }
  return out;
}

std::string NowRfc3339() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Splits a line into body and hash; false if the line does not have the expected shape.
bool SplitLine(const std::string& line, std::string& body, std::string& hash) {
  const auto pos = line.rfind(kHashKey);
  if (pos == std::string::npos) return false;
  const std::string tail = line.substr(pos + kHashKey.size());
  if (tail.size() != 64 + 2 || tail.substr(64) != "\"}") return false;
  hash = tail.substr(0, 64);
  body = line.substr(0, pos) + "}";
  return true;
}

// Closes and unlocks a file descriptor on scope exit.
class LockedFd final {
 public:
  explicit LockedFd(int fd) : fd_(fd) {}
  LockedFd(const LockedFd&) = delete;  // owns the descriptor and its lock
  LockedFd& operator=(const LockedFd&) = delete;
  ~LockedFd() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the flock
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Reads the last complete line of the file open at `fd` ("" for an empty file).
Result<std::string> LastLine(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Internal("audit: fstat: " + ErrnoText(errno));
  if (st.st_size == 0) return std::string();
  const off_t chunk = std::min<off_t>(st.st_size, 1 << 20);
  std::string buf(static_cast<std::size_t>(chunk), '\0');
  if (::pread(fd, buf.data(), buf.size(), st.st_size - chunk) != chunk) return Internal("audit: cannot read the log tail");
  if (buf.back() != '\n') return FailedPrecondition("audit: the log ends with a partial record; run 'kubehsm audit verify'");
  buf.pop_back();
  const auto nl = buf.rfind('\n');
  if (nl == std::string::npos && chunk < st.st_size) return FailedPrecondition("audit: last record is too long");
  return nl == std::string::npos ? buf : buf.substr(nl + 1);
}

// Opens the log (never through a symlink) and takes its lock.
Result<int> OpenLocked(const std::filesystem::path& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    if (errno == ELOOP) return PermissionDenied("audit: refusing to open " + path.string() + ": it is a symlink");
    return PermissionDenied("audit: cannot open " + path.string() + ": " + ErrnoText(errno));
  }
  if (::flock(fd, LOCK_EX) != 0) {
    ::close(fd);
    return Unavailable("audit: cannot lock " + path.string());
  }
  return fd;
}

// The seq and hash the next record continues from, checked from the log's last line.
Status ReadTail(int fd, int64_t& seq, std::string& prev) {
  KH_ASSIGN_OR_RETURN(std::string last, LastLine(fd));
  seq = 1;
  prev = kGenesis;
  if (last.empty()) return OkStatus();
  std::string body, hash;
  if (!SplitLine(last, body, hash)) return FailedPrecondition("audit: the last record is malformed");
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.contains("seq") || !j["seq"].is_number_integer()) {
    return FailedPrecondition("audit: the last record is malformed");
  }
  seq = j["seq"].get<int64_t>() + 1;
  prev = hash;
  return OkStatus();
}

}  // namespace

Status AuditLog::CheckAppendable() const {
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec) && !std::filesystem::is_symlink(path_, ec)) return OkStatus();
  KH_ASSIGN_OR_RETURN(int raw, OpenLocked(path_, O_RDONLY));
  LockedFd fd(raw);
  int64_t seq = 0;
  std::string prev;
  return ReadTail(fd.get(), seq, prev);
}

Status AuditLog::Append(const std::string& event, const std::map<std::string, std::string>& fields) {
  KH_ASSIGN_OR_RETURN(int raw, OpenLocked(path_, O_RDWR | O_CREAT | O_APPEND));
  LockedFd fd(raw);
  int64_t seq = 1;
  std::string prev = kGenesis;
  KH_RETURN_IF_ERROR(ReadTail(fd.get(), seq, prev));
  nlohmann::ordered_json rec;
  rec["seq"] = seq;
  rec["time"] = NowRfc3339();
  rec["uid"] = static_cast<int64_t>(::geteuid());
  rec["event"] = event;
  rec["fields"] = nlohmann::json(fields);
  rec["prev"] = prev;
  const std::string body = rec.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const std::string hash = Sha256Hex(body);
  const std::string line = body.substr(0, body.size() - 1) + std::string(kHashKey) + hash + "\"}\n";
  const ssize_t n = ::write(fd.get(), line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) {
    const int err = errno;
    // Take a short write back out, so the log does not end in a partial record.
    struct stat st {};
    if (n > 0 && ::fstat(fd.get(), &st) == 0) (void)::ftruncate(fd.get(), st.st_size - n);
    return Unavailable("audit: cannot append to " + path_.string() + ": " + (n < 0 ? ErrnoText(err) : "short write"));
  }
  if (::fsync(fd.get()) != 0) return Unavailable("audit: fsync " + path_.string() + ": " + ErrnoText(errno));
  return WriteFileAtomic(head_path(), std::to_string(seq) + " " + hash + "\n", 0600);
}

Result<int64_t> AuditLog::CopyTo(const std::filesystem::path& dir) const {
  const std::filesystem::path log_out = dir / "audit.log";
  const std::filesystem::path head_out = dir / "audit.log.head";
  std::error_code ec;
  for (const auto& p : {log_out, head_out}) {
    if (std::filesystem::exists(std::filesystem::symlink_status(p, ec))) {
      return AlreadyExists("audit: " + p.string() + " already exists");
    }
  }
  KH_ASSIGN_OR_RETURN(int raw, OpenLocked(path_, O_RDONLY));
  LockedFd fd(raw);  // appends wait until both copies are written
  KH_ASSIGN_OR_RETURN(std::string log, ReadFileBounded(path_, std::size_t{1} << 30));
  Result<std::string> head = ReadFileBounded(head_path(), 4096);
  if (!head.ok()) return head.status().WithContext("audit: reading the head file");
  KH_RETURN_IF_ERROR(WriteFileAtomic(head_out, *head, 0600));
  if (Status s = WriteFileAtomic(log_out, log, 0600); !s.ok()) {
    std::filesystem::remove(head_out, ec);
    return s;
  }
  return static_cast<int64_t>(std::count(log.begin(), log.end(), '\n'));
}

Result<AuditLog::VerifyResult> AuditLog::Verify() const {
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec)) {
    // No log is fine only when nothing was ever recorded (no head either).
    if (std::filesystem::exists(head_path(), ec)) {
      return FailedPrecondition("audit: " + path_.string() + " is missing but its head file exists (log deleted)");
    }
    return VerifyResult{};
  }
  std::ifstream in(path_, std::ios::binary);
  if (!in) return PermissionDenied("audit: cannot read " + path_.string());
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string all = ss.str();
  VerifyResult result;
  std::string prev = kGenesis;
  int64_t expected = 1;
  std::size_t pos = 0;
  while (pos < all.size()) {
    const auto nl = all.find('\n', pos);
    if (nl == std::string::npos) {
      return FailedPrecondition("audit: record " + std::to_string(expected) + " is truncated (partial last line)");
    }
    const std::string line = all.substr(pos, nl - pos);
    pos = nl + 1;
    const std::string where = "audit: record " + std::to_string(expected) + " (line " + std::to_string(expected) + ")";
    std::string body, hash;
    if (!SplitLine(line, body, hash)) return FailedPrecondition(where + " is malformed");
    if (Sha256Hex(body) != hash) return FailedPrecondition(where + ": hash mismatch (record edited)");
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.contains("seq") || !j["seq"].is_number_integer() || !j.contains("prev") ||
        !j["prev"].is_string()) {
      return FailedPrecondition(where + " is malformed");
    }
    const int64_t seq = j["seq"].get<int64_t>();
    if (seq != expected) {
      return FailedPrecondition("audit: record " + std::to_string(expected) + " missing or out of order (found seq " +
                                std::to_string(seq) + " at line " + std::to_string(expected) + ")");
    }
    if (j["prev"].get<std::string>() != prev) {
      return FailedPrecondition(where + ": chain broken (previous record removed, reordered or edited)");
    }
    prev = hash;
    ++expected;
    ++result.records;
    if (j.contains("event") && j["event"].is_string() && j.contains("fields") && j["fields"].is_object()) {
      const std::string ev = j["event"].get<std::string>();
      const auto& f = j["fields"];
      if ((ev == "cert-issue" || ev == "cert-renew") && f.contains("serial") && f["serial"].is_string()) {
        result.certificate_serials.insert(f["serial"].get<std::string>());
      }
      // An import names the serials it added, comma-separated.
      if (ev == "ledger-import" && f.contains("serials") && f["serials"].is_string()) {
        const std::string list = f["serials"].get<std::string>();
        std::size_t start = 0;
        while (start < list.size()) {
          std::size_t comma = list.find(',', start);
          if (comma == std::string::npos) comma = list.size();
          if (comma > start) result.certificate_serials.insert(list.substr(start, comma - start));
          start = comma + 1;
        }
      }
    }
  }
  result.head_hash = prev;
  // The head anchors the tail: the log must reach at least the recorded head.
  std::ifstream head_in(head_path());
  int64_t head_seq = 0;
  std::string head_hash;
  if (head_in >> head_seq >> head_hash) {
    result.beyond_head = std::max<int64_t>(result.records - head_seq, 0);
    if (result.records > head_seq + 1) {
      return FailedPrecondition("audit: " + std::to_string(result.records - head_seq) +
                                " record(s) beyond the head (records " + std::to_string(head_seq + 1) + " to " +
                                std::to_string(result.records) + "; the head file says " + std::to_string(head_seq) +
                                "): appended without updating the head (a crash leaves at most one: forged "
                                "or appended by hand)");
    }
    if (result.records < head_seq) {
      return FailedPrecondition("audit: truncated after record " + std::to_string(result.records) + "; record " +
                                std::to_string(result.records + 1) + " to " + std::to_string(head_seq) +
                                " missing (head file says " + std::to_string(head_seq) + ")");
    }
    // Re-walk to check the head's record hash (cheap relative to the read above).
    std::size_t p = 0;
    for (int64_t i = 1; i <= head_seq; ++i) {
      const auto e = all.find('\n', p);
      std::string body, hash;
      SplitLine(all.substr(p, e - p), body, hash);
      if (i == head_seq && hash != head_hash) {
        return FailedPrecondition("audit: record " + std::to_string(head_seq) + " does not match the head file");
      }
      p = e + 1;
    }
  } else if (result.records > 0) {
    return FailedPrecondition("audit: head file " + head_path().string() + " is missing or unreadable");
  }
  return result;
}

}  // namespace kubehsm::ledger
