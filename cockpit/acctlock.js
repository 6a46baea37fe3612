// SPDX-License-Identifier: BSD-3-Clause
// The acctlock Cockpit page. Everything goes through the acctlock command
// with --json, run by cockpit.spawn with superuser "try": the page adds no
// privileged path of its own, and acctlockd decides what the viewer may do
// (a non-admin is told "permission denied" and sees no buttons).
/* global cockpit */
"use strict";

const EXIT_PERMISSION_DENIED = 4;
const EXIT_UNREACHABLE = 5;

const state = { admin: false, watcher: null, refreshTimer: null, retryTimer: null };

function $(id) { return document.getElementById(id); }

function acctlock(args) {
    return cockpit.spawn(["acctlock", ...args, "--json"], { superuser: "try", err: "message" })
            .then(out => JSON.parse(out));
}

function showAlert(text, kind) {
    const alert = $("alert");
    alert.textContent = text;
    alert.className = "alert alert-" + (kind || "danger");
    alert.hidden = !text;
}

function explain(error) {
    if (error.exit_status === EXIT_UNREACHABLE)
        return "acctlockd is not running: start it with “systemctl start acctlockd.socket”.";
    if (error.exit_status === EXIT_PERMISSION_DENIED)
        return "You are not an acctlock administrator: only root and members of admin_socket_group (acctlock.conf) can see and change locks. Turn on administrative access to manage them.";
    if (error.problem === "not-found")
        return "The acctlock command is not installed.";
    return (error.message || String(error)).trim();
}

function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined || text === "" ? "–" : String(text);
    if (className) td.className = className;
    row.appendChild(td);
    return td;
}

function localTime(iso) {
    return iso ? new Date(iso).toLocaleString() : "";
}

function timeLeft(until) {
    if (!until) return "until unlocked";
    const seconds = Math.max(0, Math.round((new Date(until) - Date.now()) / 1000));
    const hours = Math.floor(seconds / 3600);
    const minutes = Math.floor((seconds % 3600) / 60);
    return hours > 0 ? `${hours} h ${minutes} min` : minutes > 0 ? `${minutes} min ${seconds % 60} s` : `${seconds} s`;
}

function setAdmin(admin) {
    state.admin = admin;
    document.body.classList.toggle("is-admin", admin);
}

function confirmDialog(title, text) {
    const dialog = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    return new Promise(resolve => {
        dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
        dialog.showModal();
    });
}

function renderLocked(users) {
    const body = $("locked-table").querySelector("tbody");
    body.replaceChildren();
    for (const user of users) {
        const row = document.createElement("tr");
        row.dataset.user = user.user;
        cell(row, user.user, "user");
        cell(row, user.lock, "kind");
        cell(row, user.reason || (user.lock === "manual" ? "" : `${user.failures} failed logins`));
        cell(row, localTime(user.locked_since));
        cell(row, timeLeft(user.locked_until));
        const actions = cell(row, "", "admin-only");
        actions.textContent = "";
        if (state.admin) {
            const button = document.createElement("button");
            button.className = "btn btn-secondary unlock";
            button.textContent = "Unlock";
            button.addEventListener("click", () => unlock(user.user));
            actions.appendChild(button);
        }
        body.appendChild(row);
    }
    $("locked-table").hidden = users.length === 0;
    $("locked-empty").hidden = users.length !== 0;
}

// Blocked sources (acctlock sources --blocked): by failures, or by an
// administrator (acctlock lock --source), each with an Unblock button.
function renderSources(sources) {
    const body = $("sources-table").querySelector("tbody");
    body.replaceChildren();
    for (const source of sources) {
        const row = document.createElement("tr");
        row.dataset.source = source.source;
        cell(row, source.source, "source");
        cell(row, source.manual ? "manual" : source.lock, "kind");
        cell(row, source.reason || (source.manual ? "" : `${source.failures} failed logins`));
        cell(row, localTime(source.blocked_since));
        cell(row, source.blocked_until ? timeLeft(source.blocked_until) : "until unblocked");
        const actions = cell(row, "", "admin-only");
        actions.textContent = "";
        if (state.admin) {
            const button = document.createElement("button");
            button.className = "btn btn-secondary unblock";
            button.textContent = "Unblock";
            button.addEventListener("click", () => unblock(source.source));
            actions.appendChild(button);
        }
        body.appendChild(row);
    }
    $("sources-table").hidden = sources.length === 0;
    $("sources-empty").hidden = sources.length !== 0;
    $("sources-empty").textContent = "No source is blocked.";
}

// The sources could not be read (an acctlockd older than admin protocol 5):
// say so instead of "No source is blocked".
function renderSourcesUnknown(text) {
    $("sources-table").querySelector("tbody").replaceChildren();
    $("sources-table").hidden = true;
    $("sources-empty").hidden = !text;
    $("sources-empty").textContent = text || "";
}

// Nothing known: neither a list nor "No account is locked".
function renderUnknown() {
    $("locked-table").querySelector("tbody").replaceChildren();
    $("locked-table").hidden = true;
    $("locked-empty").hidden = true;
    renderSourcesUnknown("");
}

function renderChart(buckets) {
    const svg = $("chart");
    svg.replaceChildren();
    if (buckets.length === 0) {
        $("chart-caption").textContent = "This acctlockd does not report failures per hour: upgrade it.";
        return;
    }
    const max = Math.max(1, ...buckets.map(b => b.failures));
    const width = 480 / buckets.length;
    buckets.forEach((bucket, i) => {
        const height = (bucket.failures / max) * 150;
        const bar = document.createElementNS("http://www.w3.org/2000/svg", "rect");
        bar.setAttribute("x", String(i * width + 2));
        bar.setAttribute("y", String(155 - height));
        bar.setAttribute("width", String(width - 4));
        bar.setAttribute("height", String(Math.max(height, bucket.failures ? 1 : 0)));
        bar.setAttribute("class", "bar");
        const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
        title.textContent = `${localTime(bucket.start)}: ${bucket.failures} failures`;
        bar.appendChild(title);
        svg.appendChild(bar);
    });
    const total = buckets.reduce((sum, b) => sum + b.failures, 0);
    $("chart-caption").textContent = `${total} failed logins in the last 24 hours; busiest hour ${max === 1 && total === 0 ? 0 : max}.`;
}

function renderTop(tableId, rows, key) {
    const body = $(tableId).querySelector("tbody");
    body.replaceChildren();
    for (const row of rows) {
        const tr = document.createElement("tr");
        cell(tr, row[key]);
        cell(tr, row.failures);
        body.appendChild(tr);
    }
}

function refresh() {
    // A failure of `sources` alone (an older acctlockd) leaves the rest of
    // the page working.
    const sources = acctlock(["sources", "--blocked"]).catch(error => ({ error }));
    return Promise.all([acctlock(["list", "--locked"]), acctlock(["stats"]), sources])
            .then(([list, stats, blocked]) => {
                setAdmin(true);
                showAlert("");
                renderLocked(list.users);
                if (blocked.error)
                    renderSourcesUnknown(explain(blocked.error));
                else
                    renderSources(blocked.sources);
                renderChart(stats.failures_per_hour || []);  // an older acctlockd has none
                renderTop("top-users", stats.top_users, "user");
                // "source": the key the lockout counts by; an older
                // acctlockd ranked rhosts as given.
                renderTop("top-sources", stats.top_sources,
                          stats.top_sources.some(row => "source" in row) ? "source" : "rhost");
                // Hosts sharing one history (admin protocol 7): filter by host.
                $("history-host-filter").hidden = !stats.shared_store;
                startWatching();
            })
            .catch(error => {
                setAdmin(false);
                renderUnknown();
                showAlert(explain(error), error.exit_status === EXIT_PERMISSION_DENIED ? "info" : "danger");
                // The page comes back by itself once acctlockd does.
                if (error.exit_status === EXIT_UNREACHABLE)
                    retrySoon(5000);
            });
}

// One pending retry at most, whoever asks for it.
function retrySoon(delay) {
    clearTimeout(state.retryTimer);
    state.retryTimer = setTimeout(refresh, delay);
}

function refreshSoon() {
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(refresh, 300);
}

function unlock(user) {
    confirmDialog(`Unlock ${user}?`, `${user} will be able to log in again, and their failed logins are cleared.`)
            .then(ok => ok && acctlock(["unlock", user]).then(refresh, error => showAlert(explain(error))));
}

function unblock(source) {
    confirmDialog(`Unblock ${source}?`, `Logins from ${source} will be accepted again, and its failed logins are cleared.`)
            .then(ok => ok && acctlock(["unlock", "--source", source]).then(refresh, error => showAlert(explain(error))));
}

function block(event) {
    event.preventDefault();
    const source = $("block-source").value.trim();
    const reason = $("block-reason").value.trim();
    if (!source) return;
    confirmDialog(`Block ${source}?`, `Every login from ${source}, to any account, will be refused until an administrator unblocks it.`)
            .then(ok => ok && acctlock(["lock", "--source", source, ...(reason ? ["--reason", reason] : [])])
                    .then(() => { $("block-form").reset(); refresh() }, error => showAlert(explain(error))));
}

function lock(event) {
    event.preventDefault();
    const user = $("lock-user").value.trim();
    const reason = $("lock-reason").value.trim();
    if (!user) return;
    confirmDialog(`Lock ${user}?`, `${user} will not be able to log in until an administrator unlocks the account.`)
            .then(ok => ok && acctlock(["lock", user, ...(reason ? ["--reason", reason] : [])])
                    .then(() => { $("lock-form").reset(); refresh() }, error => showAlert(explain(error))));
}

// An aggregate row (acctlock(8), "Bounded history") stands for `events`
// events from first_time to time: say so before the row's own detail.
function historyDetail(entry) {
    if (!entry.first_time) return entry.detail;
    let text = `${entry.events} ${entry.event} events from ${localTime(entry.first_time)} to ${localTime(entry.time)}`;
    if (entry.service === "*" && entry.rhost === "*") text += " from any service and host";
    if (entry.peer_uid) text += `, reported by uid ${entry.peer_uid}`;
    return entry.detail ? `${text}; ${entry.detail}` : text;
}

function showHistory(event) {
    event.preventDefault();
    const args = ["history", $("history-user").value.trim()];
    if ($("history-failed").checked) args.push("--failed");
    const since = $("history-since").value;
    if (since) args.push("--since", since);
    const host = $("history-host").value.trim();
    if (host && !$("history-host-filter").hidden) args.push("--host", host);
    acctlock(args).then(history => {
        const body = $("history-table").querySelector("tbody");
        body.replaceChildren();
        // The host that wrote each row (admin protocol 7; an older acctlockd
        // sends none, and the column stays away).
        const withHost = history.entries.some(entry => entry.host);
        $("history-host-column").hidden = !withHost;
        for (const entry of history.entries) {
            const row = document.createElement("tr");
            cell(row, localTime(entry.time));
            if (withHost) cell(row, entry.host, "host");
            cell(row, entry.event, "event-" + entry.event);
            cell(row, entry.service);
            cell(row, entry.rhost);
            cell(row, entry.tty);
            cell(row, historyDetail(entry));
            body.appendChild(row);
        }
        $("history-table").hidden = false;
    }, error => showAlert(explain(error)));
}

function addEvent(line) {
    let event;
    try {
        event = JSON.parse(line);
    } catch (e) {
        return;
    }
    if (event.overflow) return;
    const item = document.createElement("li");
    // A source's event names the source (its detail), not a user.
    const about = event.event.startsWith("source_") ? `source ${event.detail}` : event.user;
    item.textContent = `${localTime(event.time)}  ${event.event}  ${about}` +
        (event.service ? `  ${event.service}` : "") + (event.rhost ? ` from ${event.rhost}` : "");
    item.className = "event-" + event.event;
    const list = $("events");
    list.prepend(item);
    while (list.children.length > 50) list.lastChild.remove();
    refreshSoon();
}

// One `acctlock watch --json` for the page's lifetime; restarted if it ends.
function startWatching() {
    if (state.watcher) return;
    let buffer = "";
    const watcher = cockpit.spawn(["acctlock", "watch", "--json"], { superuser: "try", err: "message" });
    state.watcher = watcher;
    $("live").hidden = false;
    watcher.stream(data => {
        buffer += data;
        let end;
        while ((end = buffer.indexOf("\n")) >= 0) {
            addEvent(buffer.slice(0, end));
            buffer = buffer.slice(end + 1);
        }
    });
    watcher.always(() => {
        state.watcher = null;
        $("live").hidden = true;
        retrySoon(5000);
    });
}

document.addEventListener("DOMContentLoaded", () => {
    $("lock-form").addEventListener("submit", lock);
    $("block-form").addEventListener("submit", block);
    $("history-form").addEventListener("submit", showHistory);
    // Time left counts down between events.
    setInterval(() => { if (state.admin) refresh() }, 60000);
    cockpit.transport.wait(refresh);
});
