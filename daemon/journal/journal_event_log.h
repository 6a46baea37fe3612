// SPDX-License-Identifier: BSD-3-Clause
// Lock events as structured journal records, one per event, each kind with a
// fixed MESSAGE_ID that systemd/acctlock.catalog explains to operators and
// docs/journal.md documents for consumers.
#pragma once

#include <optional>
#include <span>
#include <string_view>

#include "daemon/journal/event_log.h"

namespace acctlock {

struct JournalMessage {
  HistoryEvent event;
  std::string_view message_id;  // 32 hex digits, as journalctl shows it
  int priority;                 // syslog priority
};

// Every event kind that is journaled. Successes are not: they are many, and
// they are in the history.
std::span<const JournalMessage> journal_messages() noexcept;
const JournalMessage* journal_message_for(HistoryEvent event) noexcept;

class JournalEventLog : public EventLog {
 public:
  void record(const LockEvent& event) override;
};

}  // namespace acctlock
