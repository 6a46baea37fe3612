// SPDX-License-Identifier: BSD-3-Clause
#include "cli/doctor.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "cli/admin_client.h"
#include "common/admin_protocol.h"
#include "common/config_groups.h"
#include "common/options.h"
#include "common/protocol.h"

namespace acctlock::cli {
namespace {

using Severity = Finding::Severity;

constexpr std::chrono::milliseconds kDaemonTimeout{5000};

std::string octal_mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// A directory on the way to a socket or the database that anyone may write
// to (without the sticky bit) lets anyone replace what is inside.
void check_parent(const std::string& path, std::vector<Finding>& findings) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return;
  const std::string dir = path.substr(0, slash);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return;
  if ((st.st_mode & S_IWOTH) != 0 && (st.st_mode & S_ISVTX) == 0) {
    findings.push_back({Severity::problem, dir,
                        "is writable by every user (mode " + octal_mode(st.st_mode) +
                            "): anyone can replace " + path});
  }
}

void check_event_socket(const std::string& path, std::vector<Finding>& findings) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    findings.push_back(
        {Severity::problem, path,
         std::string("event socket: ") + std::strerror(errno) +
             "; is acctlockd.socket listening? (systemctl status acctlockd.socket)"});
    return;
  }
  if (!S_ISSOCK(st.st_mode)) {
    findings.push_back({Severity::problem, path, "event socket: is not a socket"});
    return;
  }
  if (!is_trusted_daemon_uid(st.st_uid)) {
    findings.push_back({Severity::problem, path,
                        "event socket: owned by uid " + std::to_string(st.st_uid) +
                            ", not root or acctlock: the module will not trust it"});
  } else if ((st.st_mode & 0666) != 0666) {
    findings.push_back({Severity::warning, path,
                        "event socket: mode " + octal_mode(st.st_mode) +
                            ": screen lockers that run as the user cannot report (0666 lets "
                            "them; acctlockd authorises each peer by its uid)"});
  } else {
    findings.push_back({Severity::ok, path, "event socket: mode " + octal_mode(st.st_mode)});
  }
  check_parent(path, findings);
}

void check_admin_socket(const std::string& path, const Options& options,
                        std::vector<Finding>& findings) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    findings.push_back({Severity::problem, path,
                        std::string("admin socket: ") + std::strerror(errno) +
                            "; is acctlockd-admin.socket listening?"});
    return;
  }
  if (!S_ISSOCK(st.st_mode)) {
    findings.push_back({Severity::problem, path, "admin socket: is not a socket"});
    return;
  }
  if (!is_trusted_daemon_uid(st.st_uid)) {
    findings.push_back({Severity::problem, path,
                        "admin socket: owned by uid " + std::to_string(st.st_uid) +
                            ", not root or acctlock: acctlock will not trust it"});
  } else if ((st.st_mode & 0006) != 0) {
    findings.push_back({Severity::warning, path,
                        "admin socket: mode " + octal_mode(st.st_mode) +
                            ": every user may connect (acctlockd still refuses all but their "
                            "own status and history); 0600, or 0660 with the group of "
                            "admin_socket_group, is enough"});
  } else if ((st.st_mode & 0060) != 0 && options.admin_socket_group.empty()) {
    findings.push_back({Severity::warning, path,
                        "admin socket: group may connect (mode " + octal_mode(st.st_mode) +
                            ") but admin_socket_group is not set, so acctlockd refuses them"});
  } else {
    findings.push_back({Severity::ok, path, "admin socket: mode " + octal_mode(st.st_mode)});
  }
  check_parent(path, findings);
}

// The history names users and where they logged in from: only the daemon
// reads it.
void check_database(const std::string& path, std::vector<Finding>& findings) {
  bool any = false;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    const std::string file = path + suffix;
    struct stat st {};
    if (::lstat(file.c_str(), &st) != 0) continue;
    any = true;
    if (!S_ISREG(st.st_mode)) {
      findings.push_back({Severity::problem, file, "database: is not a regular file"});
    } else if (!is_trusted_daemon_uid(st.st_uid)) {
      findings.push_back(
          {Severity::problem, file,
           "database: owned by uid " + std::to_string(st.st_uid) + ", not root or acctlock"});
    } else if ((st.st_mode & 0077) != 0) {
      findings.push_back({Severity::problem, file,
                          "database: mode " + octal_mode(st.st_mode) +
                              ": others can read the login history (user names, addresses); "
                              "chmod 0600"});
    } else {
      findings.push_back({Severity::ok, file, "database: mode " + octal_mode(st.st_mode)});
    }
  }
  if (!any) {
    findings.push_back({Severity::warning, path,
                        "database: does not exist yet (acctlockd creates it when it first "
                        "starts)"});
    return;
  }
  check_parent(path, findings);
}

void check_daemon(const std::string& socket, std::vector<Finding>& findings) {
  try {
    AdminClient client(socket, kDaemonTimeout);
    const auto answer = client.request("version", nlohmann::json::object());
    const auto result = static_cast<admin::Result>(answer.value("result", -1));
    if (result == admin::Result::unsupported) {
      findings.push_back({Severity::warning, socket,
                          "acctlockd answers but is older than this acctlock (no `version` "
                          "command): restart it after an upgrade"});
      return;
    }
    if (result != admin::Result::success) {
      findings.push_back(
          {Severity::problem, socket, "acctlockd: " + answer.value("text", std::string())});
      return;
    }
    const auto& arguments = answer["arguments"];
    const std::string version = arguments.value("version", std::string());
    if (version != ACCTLOCK_VERSION ||
        arguments.value("admin_protocol", 0) != admin::kProtocolVersion ||
        arguments.value("event_protocol", 0) != protocol::kVersion) {
      findings.push_back({Severity::warning, socket,
                          "acctlockd " + version + " answers, but this is acctlock " +
                              ACCTLOCK_VERSION +
                              ": restart acctlockd after an upgrade (systemctl restart "
                              "acctlockd)"});
    } else {
      findings.push_back({Severity::ok, socket, "acctlockd " + version + " answers"});
    }
  } catch (const std::exception& e) {
    findings.push_back({Severity::problem, socket, std::string("acctlockd: ") + e.what()});
  }
}

}  // namespace

const char* severity_name(Severity severity) {
  switch (severity) {
    case Severity::ok:
      return "ok";
    case Severity::warning:
      return "warning";
    case Severity::problem:
      return "problem";
  }
  return "problem";
}

std::vector<Finding> run_doctor(const DoctorInputs& inputs) {
  std::vector<Finding> findings;

  auto parsed = load_config(inputs.config_path, !inputs.config_given);
  check_config_groups(parsed, inputs.config_path);
  for (const auto& diagnostic : parsed.diagnostics) {
    std::string where = diagnostic.file;
    if (diagnostic.line != 0) where += ":" + std::to_string(diagnostic.line);
    findings.push_back(
        {diagnostic.severity == Diagnostic::Severity::error ? Severity::problem : Severity::warning,
         where, (diagnostic.key.empty() ? "" : diagnostic.key + ": ") + diagnostic.message});
  }
  if (::access(inputs.config_path.c_str(), F_OK) != 0 && !inputs.config_given) {
    findings.push_back({Severity::warning, inputs.config_path,
                        "does not exist: acctlockd and the module run on the defaults"});
  } else if (!parsed.has_errors()) {
    findings.push_back({Severity::ok, inputs.config_path, "configuration is valid"});
  }
  for (const auto& note : migration_notes(parsed.options)) {
    findings.push_back({Severity::warning, inputs.config_path, note});
  }

  const Options& options = parsed.options;
  const std::string admin_socket =
      inputs.admin_socket.empty() ? options.admin_socket : inputs.admin_socket;
  check_event_socket(options.event_socket, findings);
  check_admin_socket(admin_socket, options, findings);
  check_database(options.database, findings);
  check_daemon(admin_socket, findings);

  for (auto& finding : check_pam_dir(inputs.pam_dir)) findings.push_back(std::move(finding));
  return findings;
}

}  // namespace acctlock::cli
