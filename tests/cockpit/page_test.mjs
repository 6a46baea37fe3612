// Drives Debian's headless Chromium (puppeteer-core) against the acctlock
// Cockpit page served by a real cockpit-ws, which test_cockpit.cc starts
// with a real acctlockd behind it. Steps, chosen by the first argument:
//   admin URL USER DIR      the lock of USER shows; screenshots light and
//                           dark; Unlock, confirmed, removes the row
//   non-admin URL DIR       the "not an administrator" message, no buttons
// Exits 0 when every check held; prints what failed otherwise.
import puppeteer from "puppeteer-core";

const [step, url, ...rest] = process.argv.slice(2);
const chromium = process.env.CHROMIUM || "/usr/bin/chromium";
const timeout = 20000;

const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
});
let failed = false;
try {
    const page = await browser.newPage();
    page.on("console", message => console.log("page console:", message.type(), message.text()));
    page.on("pageerror", error => console.log("page error:", error.message));
    await page.setViewport({ width: 1280, height: 1000 });
    await page.goto(url, { waitUntil: "load", timeout });

    if (step === "admin") {
        const [user, dir] = rest;
        const row = `#locked-table tr[data-user="${user}"]`;
        await page.waitForSelector(row, { timeout });
        const kind = await page.$eval(`${row} .kind`, cell => cell.textContent);
        if (kind !== "failures") throw new Error(`lock kind shown is ${kind}`);
        await page.waitForSelector("#chart rect", { timeout });
        await page.screenshot({ path: `${dir}/cockpit-acctlock-light.png`, fullPage: true });
        await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: "dark" }]);
        await page.screenshot({ path: `${dir}/cockpit-acctlock-dark.png`, fullPage: true });
        await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: "light" }]);
        await page.click(`${row} button.unlock`);
        await page.waitForSelector("#confirm[open]", { timeout });
        await page.screenshot({ path: `${dir}/cockpit-acctlock-confirm.png` });
        await page.click("#confirm-ok");
        await page.waitForSelector(row, { hidden: true, timeout });
        console.log("unlocked through the page");
    } else if (step === "non-admin") {
        const [dir] = rest;
        await page.waitForFunction(
            () => document.getElementById("alert").textContent.includes("not an acctlock administrator"),
            { timeout });
        const buttons = await page.$$eval("button", all => all.filter(b => b.offsetParent !== null)
                .map(b => b.textContent.trim()));
        if (buttons.some(text => text === "Unlock" || text.startsWith("Lock")))
            throw new Error(`a non-admin sees buttons: ${buttons.join(", ")}`);
        await page.screenshot({ path: `${dir}/cockpit-acctlock-non-admin.png`, fullPage: true });
        console.log("non-admin sees no buttons");
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
