// Drives Debian's headless Chromium (puppeteer-core) against the acctlock
// Cockpit page served by a real cockpit-ws, which test_cockpit.cc starts
// with a real acctlockd behind it. Usage:
//   page_test.mjs STEP URL SYNC_DIR SHOT_DIR [USER...]
// SYNC_DIR is where the driver and test_cockpit.cc hand over: the driver
// creates SYNC_DIR/NAME when the page has reached a state, and waits for
// SYNC_DIR/NAME-done when the test is to act meanwhile. Every wait is on a
// page condition or one of those files, with a deadline. Steps:
//   admin USER LIVE_USER HOST
//                         USER's lock (made through PAM) shows on load;
//                         its history shows HOST (the daemon's host_name)
//                         in a Host column, and no host filter (one host);
//                         LIVE_USER's, made after the page is up, shows
//                         through acctlock watch; screenshots light, dark
//                         and the confirmation; Unlock cancelled keeps the
//                         lock, Unlock confirmed removes USER's row only
//   non-admin             the "not an administrator" message, no buttons
//   sources SOURCE        SOURCE's block (made through PAM failures) shows
//                         with kind "failures"; Unblock confirmed removes
//                         it; the Block form blocks 198.51.100.0/24 with a
//                         reason, which then shows as "manual"
//   down USER             the "acctlockd is not running" message and no
//                         buttons; once the test restarts acctlockd, the
//                         page recovers by itself and shows USER's lock
// Exits 0 when every check held; prints what failed otherwise.
import fs from "node:fs";
import path from "node:path";
import puppeteer from "puppeteer-core";

const [step, url, syncDir, shotDir, ...users] = process.argv.slice(2);
const chromium = process.env.CHROMIUM || "/usr/bin/chromium";
// Deadlines for a loaded two-core machine: they bound a wait, and a passing
// run never waits them out.
const timeout = 90000;

function handOver(name) {
    fs.writeFileSync(path.join(syncDir, name), "");
}

async function waitForTest(name) {
    const file = path.join(syncDir, name + "-done");
    const deadline = Date.now() + timeout;
    // fs.watch misses files created before it starts: poll the one file.
    while (!fs.existsSync(file)) {
        if (Date.now() > deadline) throw new Error(`the test did not finish ${name}`);
        await new Promise(resolve => setTimeout(resolve, 100));
    }
}

const visibleButtons = page => page.$$eval("button", all => all.filter(b => b.offsetParent !== null)
        .map(b => b.textContent.trim()));

async function expectNoButtons(page, who) {
    const buttons = await visibleButtons(page);
    if (buttons.some(text => text === "Unlock" || text.startsWith("Lock")))
        throw new Error(`${who} sees buttons: ${buttons.join(", ")}`);
}

// When the page cannot know the locks, it must not claim there are none.
async function expectNoClaimAboutLocks(page) {
    if (await page.$eval("#locked-empty", p => !p.hidden))
        throw new Error("the page says \"No account is locked\" without knowing");
}

const alertSays = (page, text) => page.waitForFunction(
    wanted => !document.getElementById("alert").hidden &&
              document.getElementById("alert").textContent.includes(wanted),
    { timeout }, text);

const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    protocolTimeout: timeout,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
});
let failed = false;
try {
    const page = await browser.newPage();
    page.setDefaultTimeout(timeout);
    page.on("console", message => console.log("page console:", message.type(), message.text()));
    page.on("pageerror", error => console.log("page error:", error.message));
    await page.setViewport({ width: 1280, height: 1000 });
    await page.goto(url, { waitUntil: "load", timeout });

    if (step === "admin") {
        const [user, liveUser, host] = users;
        const row = name => `#locked-table tr[data-user="${name}"]`;
        await page.waitForSelector(row(user));
        const kind = await page.$eval(`${row(user)} .kind`, cell => cell.textContent);
        if (kind !== "failures") throw new Error(`lock kind shown is ${kind}`);
        console.log("the lock made through PAM shows");

        // The account's history names the host that recorded each event.
        await page.type("#history-user", user);
        await page.click("#history-form button[type=submit]");
        await page.waitForSelector("#history-table:not([hidden]) tbody tr");
        if (await page.$eval("#history-host-column", th => th.hidden))
            throw new Error("the history has no Host column");
        const hosts = await page.$$eval("#history-table tbody td.host", cells => cells.map(c => c.textContent));
        if (hosts.length === 0 || hosts.some(shown => shown !== host))
            throw new Error(`the history's hosts are ${hosts.join(", ")}, not ${host}`);
        if (!await page.$eval("#history-host-filter", label => label.hidden))
            throw new Error("a host filter shows although one host keeps this history");
        console.log("the history shows the host");

        // Live: a lock made while the page is open arrives through watch.
        await page.waitForSelector("#live:not([hidden])");
        handOver("page-up");
        await waitForTest("page-up");
        await page.waitForSelector(row(liveUser));
        // It came through acctlock watch (the events list), not a reload.
        await page.waitForFunction(
            name => [...document.querySelectorAll("#events li.event-locked")]
                    .some(item => item.textContent.includes(name)),
            { timeout }, liveUser);
        console.log("the lock made while the page was open shows");

        await page.waitForSelector("#chart rect");
        await page.screenshot({ path: `${shotDir}/cockpit-acctlock-light.png`, fullPage: true });
        await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: "dark" }]);
        await page.screenshot({ path: `${shotDir}/cockpit-acctlock-dark.png`, fullPage: true });
        await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: "light" }]);

        // Cancel changes nothing...
        await page.click(`${row(user)} button.unlock`);
        await page.waitForSelector("#confirm[open]");
        const title = await page.$eval("#confirm-title", h => h.textContent);
        if (!title.includes(user)) throw new Error(`the confirmation names no ${user}: ${title}`);
        await page.screenshot({ path: `${shotDir}/cockpit-acctlock-confirm.png` });
        await page.click("#confirm-cancel");
        await page.waitForSelector("#confirm:not([open])");
        handOver("cancelled");
        await waitForTest("cancelled");
        if (!await page.$(row(user))) throw new Error("Cancel removed the row");
        console.log("cancelled the unlock");

        // ...Confirm unlocks that one account.
        await page.click(`${row(user)} button.unlock`);
        await page.waitForSelector("#confirm[open]");
        await page.click("#confirm-ok");
        await page.waitForSelector(row(user), { hidden: true });
        if (!await page.$(row(liveUser))) throw new Error(`${liveUser}'s row went too`);
        console.log("unlocked through the page");
    } else if (step === "sources") {
        const [source] = users;
        const row = name => `#sources-table tr[data-source="${name}"]`;
        await page.waitForSelector(row(source));
        const kind = await page.$eval(`${row(source)} .kind`, cell => cell.textContent);
        if (kind !== "failures") throw new Error(`source block kind shown is ${kind}`);
        console.log("the source blocked through PAM shows");
        await page.screenshot({ path: `${shotDir}/cockpit-acctlock-sources.png`, fullPage: true });

        await page.click(`${row(source)} button.unblock`);
        await page.waitForSelector("#confirm[open]");
        const title = await page.$eval("#confirm-title", h => h.textContent);
        if (!title.includes(source)) throw new Error(`the confirmation names no ${source}: ${title}`);
        await page.click("#confirm-ok");
        await page.waitForSelector(row(source), { hidden: true });
        await page.waitForSelector("#sources-empty:not([hidden])");
        console.log("unblocked through the page");

        // An administrator's block, from the form.
        await page.type("#block-source", "198.51.100.0/24");
        await page.type("#block-reason", "scanner seen");
        await page.click("#block-button");
        await page.waitForSelector("#confirm[open]");
        await page.click("#confirm-ok");
        await page.waitForSelector(row("198.51.100.0/24"));
        const manual = await page.$eval(`${row("198.51.100.0/24")}`, r => r.textContent);
        if (!manual.includes("manual") || !manual.includes("scanner seen"))
            throw new Error(`the admin's block shows as ${manual}`);
        console.log("blocked a prefix through the page");
    } else if (step === "non-admin") {
        await alertSays(page, "not an acctlock administrator");
        await expectNoButtons(page, "a non-admin");
        await expectNoClaimAboutLocks(page);
        await page.screenshot({ path: `${shotDir}/cockpit-acctlock-non-admin.png`, fullPage: true });
        console.log("non-admin sees no buttons");
    } else if (step === "down") {
        const [user] = users;
        await alertSays(page, "acctlockd is not running");
        await expectNoButtons(page, "with acctlockd down, the viewer");
        await expectNoClaimAboutLocks(page);
        await page.screenshot({ path: `${shotDir}/cockpit-acctlock-down.png`, fullPage: true });
        console.log("told that acctlockd is not running");
        handOver("down-shown");
        await waitForTest("down-shown");
        await page.waitForSelector(`#locked-table tr[data-user="${user}"] button.unlock`);
        await page.waitForSelector("#alert", { hidden: true });
        console.log("recovered once acctlockd was back");
    } else {
        throw new Error(`unknown step ${step}`);
    }
} catch (error) {
    console.log("FAILED:", error.message);
    failed = true;
} finally {
    await browser.close();
}
process.exit(failed ? 1 : 0);
