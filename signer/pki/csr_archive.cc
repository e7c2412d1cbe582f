#include "signer/pki/csr_archive.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "common/file_util.h"
#include "signer/pki/pki_files.h"
#include "signer/pki/sign_dir.h"

namespace kubehsm::signer::pki {
namespace {

namespace fs = std::filesystem;

// libarchive handles, freed on scope exit (the library's own free functions).
struct ArchiveReadDeleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};
struct ArchiveWriteDeleter {
  void operator()(struct archive* a) const { archive_write_free(a); }
};
struct ArchiveEntryDeleter {
  void operator()(struct archive_entry* e) const { archive_entry_free(e); }
};
using ArchiveReader = std::unique_ptr<struct archive, ArchiveReadDeleter>;
using ArchiveWriter = std::unique_ptr<struct archive, ArchiveWriteDeleter>;
using ArchiveEntryPtr = std::unique_ptr<struct archive_entry, ArchiveEntryDeleter>;

Status ArchiveError(struct archive* a, const std::string& what) {
  const char* msg = archive_error_string(a);
  return InvalidArgument(what + ": " + (msg != nullptr ? msg : "libarchive error"));
}

// Where an archive name lands on disk.
fs::path Destination(const std::string& name, const fs::path& cert_dir, const fs::path& kubeconfig_dir) {
  return name.starts_with("pki/") ? cert_dir / name.substr(4) : kubeconfig_dir / name;
}

}  // namespace

Status ExtractGenerateCsrArchive(const fs::path& archive, const fs::path& cert_dir, const fs::path& kubeconfig_dir) {
  return ExtractLayoutArchive(archive, cert_dir, kubeconfig_dir, GenerateCsrInputNames(),
                              "a kubeadm certs generate-csr layout");
}

Status ExtractLayoutArchive(const fs::path& archive, const fs::path& cert_dir, const fs::path& kubeconfig_dir,
                            const std::vector<std::string>& allowed_names, const std::string& layout) {
  KH_ASSIGN_OR_RETURN(std::string data, ReadRegularFileBounded(archive, kMaxArchiveBytes));
  const std::set<std::string> allowed(allowed_names.begin(), allowed_names.end());
  ArchiveReader a(archive_read_new());
  if (!a) return Internal("archive_read_new failed");
  // Built-in decompressors only (filter_all would also run external programs such as lzop).
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_bzip2(a.get());
  archive_read_support_filter_xz(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_memory(a.get(), data.data(), data.size()) != ARCHIVE_OK) {
    return ArchiveError(a.get(), archive.string() + " is not a tar archive");
  }
  std::map<std::string, std::string> files;
  struct archive_entry* entry = nullptr;
  int rc = 0;
  int entries = 0;
  while ((rc = archive_read_next_header(a.get(), &entry)) == ARCHIVE_OK) {
    if (++entries > kMaxArchiveEntries) return InvalidArgument(archive.string() + " has too many members");
    const char* raw = archive_entry_pathname(entry);
    std::string name = raw != nullptr ? raw : "";
    const std::string shown = archive.string() + ": member '" + name + "'";
    while (name.starts_with("./")) name.erase(0, 2);
    if (name.starts_with("/")) return InvalidArgument(shown + " has an absolute path");
    if (name == ".." || name.starts_with("../") || name.find("/../") != std::string::npos || name.ends_with("/..")) {
      return InvalidArgument(shown + " leaves the directory ('..')");
    }
    if (archive_entry_hardlink(entry) != nullptr) return InvalidArgument(shown + " is a hard link");
    const auto type = archive_entry_filetype(entry);
    if (type == AE_IFDIR) {
      while (name.ends_with("/")) name.pop_back();
      if (name.empty() || name == "." || name == "pki" || name == "pki/etcd") continue;
      return InvalidArgument(shown + " is an unexpected directory");
    }
    if (type == AE_IFLNK) return InvalidArgument(shown + " is a symbolic link");
    if (type != AE_IFREG) return InvalidArgument(shown + " is not a regular file");
    if (!allowed.contains(name)) {
      return InvalidArgument(shown + " is not part of " + layout);
    }
    if (files.contains(name)) return InvalidArgument(shown + " appears twice");
    if (archive_entry_size(entry) < 0 || static_cast<std::size_t>(archive_entry_size(entry)) > kMaxArchiveMemberBytes) {
      return InvalidArgument(shown + " is too large");
    }
    std::string content(static_cast<std::size_t>(archive_entry_size(entry)), '\0');
    const la_ssize_t n = content.empty() ? 0 : archive_read_data(a.get(), content.data(), content.size());
    if (n < 0 || static_cast<std::size_t>(n) != content.size()) return ArchiveError(a.get(), shown + " cannot be read");
    files.emplace(name, std::move(content));
  }
  if (rc != ARCHIVE_EOF) return ArchiveError(a.get(), archive.string() + " is damaged");
  if (files.empty()) return InvalidArgument(archive.string() + " holds no file of " + layout);
  for (const auto& [name, content] : files) {
    const fs::path dst = Destination(name, cert_dir, kubeconfig_dir);
    KH_RETURN_IF_ERROR(EnsureDirectory(dst.parent_path(), 0700));
    KH_RETURN_IF_ERROR(WriteFileAtomic(dst, content, 0600));
  }
  return OkStatus();
}

Status WriteSignedArchive(const fs::path& archive, const fs::path& cert_dir, const fs::path& kubeconfig_dir) {
  return WriteLayoutArchive(archive, cert_dir, kubeconfig_dir, SignDirOutputNames());
}

Status WriteLayoutArchive(const fs::path& archive, const fs::path& cert_dir, const fs::path& kubeconfig_dir,
                          const std::vector<std::string>& names) {
  ArchiveWriter a(archive_write_new());
  if (!a) return Internal("archive_write_new failed");
  std::string out;
  auto write_cb = [](struct archive*, void* client, const void* buf, size_t len) -> la_ssize_t {
    static_cast<std::string*>(client)->append(static_cast<const char*>(buf), len);
    return static_cast<la_ssize_t>(len);
  };
  if (archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK ||
      archive_write_open(a.get(), &out, nullptr, write_cb, nullptr) != ARCHIVE_OK) {
    return ArchiveError(a.get(), "creating " + archive.string());
  }
  const time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  int members = 0;
  for (const std::string& name : names) {
    const fs::path src = Destination(name, cert_dir, kubeconfig_dir);
    if (!PathExists(src)) continue;
    std::error_code ec;
    if (fs::is_symlink(fs::symlink_status(src, ec))) return PermissionDenied(src.string() + " is a symbolic link");
    KH_ASSIGN_OR_RETURN(std::string content, ReadFileBounded(src, kMaxArchiveMemberBytes));
    ArchiveEntryPtr e(archive_entry_new());
    if (!e) return Internal("archive_entry_new failed");
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), name.ends_with(".crt") ? kCertMode : kKubeconfigMode);  // sa.pub: 0600 too
    archive_entry_set_size(e.get(), static_cast<la_int64_t>(content.size()));
    archive_entry_set_uid(e.get(), 0);
    archive_entry_set_gid(e.get(), 0);
    archive_entry_set_uname(e.get(), "root");
    archive_entry_set_gname(e.get(), "root");
    archive_entry_set_mtime(e.get(), now, 0);
    if (archive_write_header(a.get(), e.get()) != ARCHIVE_OK ||
        archive_write_data(a.get(), content.data(), content.size()) != static_cast<la_ssize_t>(content.size())) {
      return ArchiveError(a.get(), "adding " + name + " to " + archive.string());
    }
    ++members;
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) return ArchiveError(a.get(), "finishing " + archive.string());
  if (members == 0) return NotFound("no files to put into " + archive.string());
  return WriteFileAtomic(archive, out, 0600);
}

}  // namespace kubehsm::signer::pki
