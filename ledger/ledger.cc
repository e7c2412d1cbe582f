#include "ledger/ledger.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <tuple>

#include "common/file_util.h"

namespace kubehsm::ledger {
namespace {

constexpr int kSchemaVersion = 2;
constexpr int kBusyTimeoutMs = 30000;

Status SqlError(sqlite3* db, const std::string& what) {
  const int code = sqlite3_errcode(db);
  StatusCode sc = StatusCode::kInternal;
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED || code == SQLITE_FULL || code == SQLITE_IOERR) {
    sc = StatusCode::kUnavailable;
  } else if (code == SQLITE_CANTOPEN || code == SQLITE_READONLY || code == SQLITE_PERM) {
    sc = StatusCode::kPermissionDenied;
  } else if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT) {
    sc = StatusCode::kFailedPrecondition;
  }
  return Status(sc, "ledger: " + what + ": " + sqlite3_errmsg(db));
}

// One prepared statement, finalized on scope exit.
class Statement final {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) { rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
  Statement(const Statement&) = delete;  // owns the sqlite3_stmt
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() const { return stmt_; }
  void Bind(int i, const std::string& s) { sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT); }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  std::string Text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p != nullptr ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

std::string JoinSans(const std::vector<std::string>& sans) {
  std::string out;
  for (const auto& s : sans) {
    if (!out.empty()) out += "\n";
    out += s;
  }
  return out;
}

std::vector<std::string> SplitSans(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < s.size()) {
    auto nl = s.find('\n', start);
    out.push_back(s.substr(start, nl - start));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out;
}

constexpr const char* kColumns =
    "serial, issuer_ca, subject, sans, profile, operation, not_before, not_after, sha256, requester, host, "
    "issued_at, cert_pem, box_id";

IssuanceRecord ReadRow(const Statement& st) {
  IssuanceRecord r;
  r.serial_hex = st.Text(0);
  r.issuer_ca = st.Text(1);
  r.subject = st.Text(2);
  r.sans = SplitSans(st.Text(3));
  r.profile = st.Text(4);
  r.operation = st.Text(5);
  r.not_before = st.Int(6);
  r.not_after = st.Int(7);
  r.sha256_fingerprint = st.Text(8);
  r.requester = st.Text(9);
  r.host = st.Text(10);
  r.issued_at = st.Int(11);
  r.cert_pem = st.Text(12);
  r.box_id = st.Text(13);
  return r;
}

}  // namespace

Status CheckStateDirectory(const std::filesystem::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return PermissionDenied("state directory " + dir.string() + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) return PermissionDenied("state directory " + dir.string() + " is not a directory");
  if (std::string why = UntrustedWriterReason(st); !why.empty()) {
    return PermissionDenied("refusing state directory " + dir.string() + ": it " + why +
                            " (whoever can write it can swap the ledger and audit log)");
  }
  return OkStatus();
}

Status CheckStateFile(const std::filesystem::path& file) {
  struct stat st {};
  if (::lstat(file.c_str(), &st) != 0) {
    if (errno == ENOENT) return OkStatus();
    return PermissionDenied("cannot stat " + file.string() + ": " + std::strerror(errno));
  }
  if (S_ISLNK(st.st_mode)) return PermissionDenied("refusing " + file.string() + ": it is a symlink");
  if (!S_ISREG(st.st_mode)) return PermissionDenied("refusing " + file.string() + ": not a regular file");
  if (std::string why = UntrustedWriterReason(st); !why.empty()) return PermissionDenied("refusing " + file.string() + ": it " + why);
  return OkStatus();
}

Status CheckLedgerAudited(Ledger& ledger, const std::set<std::string>& audited_serials) {
  KH_ASSIGN_OR_RETURN(std::vector<IssuanceRecord> rows, ledger.List());
  // Records written before schema 2 name serials without openssl's leading 0.
  std::set<std::string> audited;
  for (const auto& s : audited_serials) audited.insert(NormalizeSerialHex(s));
  std::vector<std::string> missing;
  for (const auto& r : rows) {
    if (!audited.contains(NormalizeSerialHex(r.serial_hex))) missing.push_back(r.serial_hex);
  }
  if (missing.empty()) return OkStatus();
  std::string names;
  for (std::size_t i = 0; i < missing.size() && i < 5; ++i) names += (i ? ", " : "") + missing[i];
  if (missing.size() > 5) names += ", ...";
  return FailedPrecondition("ledger " + ledger.path().string() + ": " + std::to_string(missing.size()) +
                            " issued certificate(s) without an audit record (serial " + names + ")");
}

std::string NormalizeSerialHex(const std::string& hex) {
  std::string out;
  for (char c : hex) {
    if (c == ':' || c == ' ') continue;
    out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  std::size_t nz = out.find_first_not_of('0');
  if (nz == std::string::npos) return "00";  // openssl prints a zero serial as one zero byte
  out = out.substr(nz);
  if (out.size() % 2 != 0) out.insert(0, "0");  // whole bytes, as openssl prints them
  return out;
}

Result<std::unique_ptr<Ledger>> Ledger::Open(const std::filesystem::path& path) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    KH_RETURN_IF_ERROR(CheckStateFile(path.string() + suffix));
  }
  sqlite3* db = nullptr;
  const mode_t old = ::umask(077);  // a new database (and its WAL) is created 0600
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW,
                           nullptr);
  ::umask(old);
  if (rc != SQLITE_OK) {
    Status s = db != nullptr ? SqlError(db, "opening " + path.string())
                             : Internal("ledger: cannot open " + path.string());
    sqlite3_close(db);
    return s;
  }
  auto ledger = std::make_unique<Ledger>(Private{}, db, path);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  KH_RETURN_IF_ERROR(ledger->Exec("PRAGMA journal_mode=WAL"));
  KH_RETURN_IF_ERROR(ledger->Exec("PRAGMA synchronous=FULL"));
  KH_RETURN_IF_ERROR(ledger->Exec("PRAGMA foreign_keys=ON"));
  Statement ver(db, "PRAGMA user_version");
  if (!ver.ok() || sqlite3_step(ver.get()) != SQLITE_ROW) return SqlError(db, "reading the schema version");
  const int64_t version = ver.Int(0);
  if (version > kSchemaVersion) {
    return FailedPrecondition("ledger " + path.string() + " has schema version " + std::to_string(version) +
                              ", newer than this kubehsm understands (" + std::to_string(kSchemaVersion) + ")");
  }
  if (version == 0) {
    KH_RETURN_IF_ERROR(ledger->Exec(
        "BEGIN IMMEDIATE;"
        "CREATE TABLE IF NOT EXISTS certificates ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  serial TEXT NOT NULL UNIQUE,"
        "  issuer_ca TEXT NOT NULL, subject TEXT NOT NULL, sans TEXT NOT NULL, profile TEXT NOT NULL,"
        "  operation TEXT NOT NULL, not_before INTEGER NOT NULL, not_after INTEGER NOT NULL,"
        "  sha256 TEXT NOT NULL UNIQUE, requester TEXT NOT NULL, host TEXT NOT NULL,"
        "  issued_at INTEGER NOT NULL, cert_pem TEXT NOT NULL);"
        "CREATE INDEX IF NOT EXISTS certificates_issuer ON certificates(issuer_ca);"
        "PRAGMA user_version=1;"
        "COMMIT;"));
  }
  if (version < 2) {
    // Schema 2: the box id (meta table, and per row: who issued it) and serials in openssl's
    // even-length form (schema 1 stripped the leading 0 of "01BB...").
    KH_RETURN_IF_ERROR(
        ledger->Exec("BEGIN IMMEDIATE;"
                     "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                     "INSERT OR IGNORE INTO meta (key, value) VALUES ('box_id', lower(hex(randomblob(16))));"
                     "ALTER TABLE certificates ADD COLUMN box_id TEXT NOT NULL DEFAULT '';"
                     "UPDATE certificates SET box_id = (SELECT value FROM meta WHERE key = 'box_id');"
                     "UPDATE certificates SET serial = '0' || serial WHERE length(serial) % 2 = 1;"
                     "PRAGMA user_version=2;"
                     "COMMIT;"));
  }
  Statement box(db, "SELECT value FROM meta WHERE key = 'box_id'");
  if (!box.ok() || sqlite3_step(box.get()) != SQLITE_ROW) return SqlError(db, "reading the box id");
  ledger->box_id_ = box.Text(0);
  return ledger;
}

Ledger::~Ledger() { sqlite3_close_v2(db_); }

Status Ledger::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err != nullptr ? err : "unknown error";
    sqlite3_free(err);
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    Status s = SqlError(db_, "executing schema/pragma");
    return Status(s.code(), "ledger " + path_.string() + ": " + msg);
  }
  return OkStatus();
}

Status Ledger::Insert(const IssuanceRecord& r) {
  Statement st(db_,
               "INSERT INTO certificates (serial, issuer_ca, subject, sans, profile, operation, not_before, not_after, "
               "sha256, requester, host, issued_at, cert_pem, box_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  if (!st.ok()) return SqlError(db_, "preparing insert");
  st.Bind(1, NormalizeSerialHex(r.serial_hex));
  st.Bind(2, r.issuer_ca);
  st.Bind(3, r.subject);
  st.Bind(4, JoinSans(r.sans));
  st.Bind(5, r.profile);
  st.Bind(6, r.operation);
  st.Bind(7, r.not_before);
  st.Bind(8, r.not_after);
  st.Bind(9, r.sha256_fingerprint);
  st.Bind(10, r.requester);
  st.Bind(11, r.host);
  st.Bind(12, r.issued_at);
  st.Bind(13, r.cert_pem);
  st.Bind(14, r.box_id.empty() ? box_id_ : r.box_id);
  const int rc = sqlite3_step(st.get());
  if (rc == SQLITE_CONSTRAINT) {
    return AlreadyExists("ledger: serial " + NormalizeSerialHex(r.serial_hex) + " was already issued");
  }
  if (rc != SQLITE_DONE) return SqlError(db_, "recording serial " + r.serial_hex);
  return OkStatus();
}

Status Ledger::Record(const IssuanceRecord& record) {
  // One statement in autocommit mode is its own durable transaction.
  return Insert(record);
}

Status Ledger::Abort(Status cause) {
  Status rolled_back = Exec("ROLLBACK");
  if (rolled_back.ok()) return cause;
  if (cause.ok()) return rolled_back;
  return Status(cause.code(), cause.message() + "; and then " + rolled_back.message());
}

Status Ledger::RecordThen(const IssuanceRecord& record, const std::function<Status()>& before_commit) {
  KH_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  Status s = Insert(record);
  if (s.ok()) s = before_commit();
  if (!s.ok()) return Abort(s);
  if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return Abort(SqlError(db_, "committing serial " + record.serial_hex));
  }
  return OkStatus();
}

Result<IssuanceRecord> Ledger::IssueInTransaction(const std::function<Result<IssuanceRecord>()>& issue) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    KH_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    auto record = issue();
    if (!record.ok()) return Abort(record.status());
    Status s = Insert(*record);
    if (s.code() == StatusCode::kAlreadyExists) {
      KH_RETURN_IF_ERROR(Abort(OkStatus()));
      continue;  // fresh serial on the next attempt
    }
    if (!s.ok()) return Abort(s);
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      return Abort(SqlError(db_, "committing serial " + record->serial_hex));
    }
    return record;
  }
  return Internal("ledger: five serial collisions in a row; refusing to continue");
}

Result<bool> Ledger::Contains(const std::string& serial_hex) {
  Statement st(db_, "SELECT 1 FROM certificates WHERE serial = ?");
  if (!st.ok()) return SqlError(db_, "preparing lookup");
  st.Bind(1, NormalizeSerialHex(serial_hex));
  const int rc = sqlite3_step(st.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqlError(db_, "looking up serial");
}

Result<IssuanceRecord> Ledger::Get(const std::string& serial_hex) {
  const std::string sql = std::string("SELECT ") + kColumns + " FROM certificates WHERE serial = ?";
  Statement st(db_, sql.c_str());
  if (!st.ok()) return SqlError(db_, "preparing lookup");
  st.Bind(1, NormalizeSerialHex(serial_hex));
  const int rc = sqlite3_step(st.get());
  if (rc == SQLITE_ROW) return ReadRow(st);
  if (rc == SQLITE_DONE) return NotFound("ledger: no certificate with serial " + NormalizeSerialHex(serial_hex));
  return SqlError(db_, "looking up serial");
}

Result<std::vector<IssuanceRecord>> Ledger::List(const ListFilter& filter) {
  std::string sql = std::string("SELECT ") + kColumns + " FROM certificates WHERE 1=1";
  if (filter.issuer_ca) sql += " AND issuer_ca = ?1";
  if (filter.profile) sql += " AND profile = ?2";
  sql += " ORDER BY id";
  if (filter.limit > 0) sql += " LIMIT " + std::to_string(filter.limit);
  Statement st(db_, sql.c_str());
  if (!st.ok()) return SqlError(db_, "preparing list");
  if (filter.issuer_ca) st.Bind(1, *filter.issuer_ca);
  if (filter.profile) st.Bind(2, *filter.profile);
  std::vector<IssuanceRecord> out;
  int rc = 0;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) out.push_back(ReadRow(st));
  if (rc != SQLITE_DONE) return SqlError(db_, "listing");
  return out;
}

Result<ImportCounts> Ledger::Import(const std::vector<IssuanceRecord>& rows,
                                    const std::function<Status(const ImportCounts&)>& before_commit) {
  KH_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  ImportCounts counts;
  for (const auto& row : rows) {
    const std::string serial = NormalizeSerialHex(row.serial_hex);
    Result<IssuanceRecord> have = Get(serial);
    if (have.ok()) {
      IssuanceRecord theirs = row;
      theirs.serial_hex = serial;
      const auto key = [](const IssuanceRecord& r) {
        return std::tie(r.serial_hex, r.issuer_ca, r.subject, r.sans, r.profile, r.operation, r.not_before, r.not_after,
                        r.sha256_fingerprint, r.requester, r.host, r.issued_at, r.cert_pem, r.box_id);
      };
      if (key(*have) == key(theirs)) {
        ++counts.identical;
        continue;
      }
      return Abort(AlreadyExists("serial collision: serial " + serial + " is in " + path_.string() + " (box " +
                                 have->box_id + ", sha256 " + have->sha256_fingerprint +
                                 ") and in the import with other content (box " + row.box_id + ", sha256 " +
                                 row.sha256_fingerprint + "); nothing imported"));
    }
    if (have.status().code() != StatusCode::kNotFound) return Abort(have.status());
    if (row.box_id.empty()) return Abort(InvalidArgument("ledger import: serial " + serial + " has no box id"));
    Status s = Insert(row);
    if (s.code() == StatusCode::kAlreadyExists) {
      // The serial is new, so the SHA-256 is not: the same certificate under two serials.
      return Abort(AlreadyExists("ledger import: serial " + serial + ": its certificate (sha256 " +
                                 row.sha256_fingerprint +
                                 ") is already in the ledger under another serial; "
                                 "nothing imported"));
    }
    if (!s.ok()) return Abort(s);
    ++counts.added;
    counts.added_serials.push_back(serial);
  }
  if (Status s = before_commit(counts); !s.ok()) return Abort(s);
  if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return Abort(SqlError(db_, "committing the import"));
  }
  return counts;
}

Status Ledger::BackupTo(const std::filesystem::path& dest) {
  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::symlink_status(dest, ec))) {
    return AlreadyExists("ledger backup: " + dest.string() + " already exists");
  }
  sqlite3* out = nullptr;
  const mode_t old = ::umask(077);
  int rc =
      sqlite3_open_v2(dest.c_str(), &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW, nullptr);
  ::umask(old);
  Status result = OkStatus();
  if (rc != SQLITE_OK) {
    result = out != nullptr ? SqlError(out, "creating " + dest.string())
                            : Internal("ledger: cannot create " + dest.string());
  } else {
    sqlite3_backup* b = sqlite3_backup_init(out, "main", db_, "main");
    if (b == nullptr) {
      result = SqlError(out, "starting the backup to " + dest.string());
    } else {
      // All pages in one step: the copy is one committed state of the source.
      while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED) sqlite3_sleep(50);
      sqlite3_backup_finish(b);
      if (rc != SQLITE_DONE) result = SqlError(out, "backing up to " + dest.string());
    }
  }
  if (sqlite3_close(out) != SQLITE_OK && result.ok()) result = Internal("ledger: closing " + dest.string());
  if (!result.ok()) {
    std::filesystem::remove(dest, ec);
    for (const char* suffix : {"-wal", "-shm", "-journal"}) std::filesystem::remove(dest.string() + suffix, ec);
  }
  return result;
}

Result<int64_t> Ledger::Count() {
  Statement st(db_, "SELECT COUNT(*) FROM certificates");
  if (!st.ok() || sqlite3_step(st.get()) != SQLITE_ROW) return SqlError(db_, "counting");
  return st.Int(0);
}

}  // namespace kubehsm::ledger
