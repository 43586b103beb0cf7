// The owner's login as a person does it, in Debian's Chromium (issue #13): set-up with the
// one-time code, the settings page, a new label seen on the status page, logout, a wrong
// password, and a login again. Each page is screenshotted into $SCREENSHOTS. Run by
// ci/browser-test.sh, which starts portico and hands over its address and set-up code:
//   PORTICO_URL=https://127.0.0.1:PORT SETUP_CODE=... SCREENSHOTS=DIR \
//   NODE_PATH=DIR/node_modules node owner-login.cjs
// CommonJS, so that NODE_PATH finds the npm packages installed outside the source tree.
"use strict";
const { mkdirSync } = require("node:fs");
const { chromium } = require("playwright-core");

const env = (name) => process.env[name] || fail(`${name} is not set: run ci/browser-test.sh`);
const base = env("PORTICO_URL");
const code = env("SETUP_CODE");
const shots = env("SCREENSHOTS");
const password = "plum kettle under the stairs";
// Markup and non-ASCII in the label: the pages must escape it and keep it whole.
const label = "Lab bench 3 <east> & café";

function fail(message) {
  console.error(`browser test: ${message}`);
  process.exit(1);
}

async function main() {
  mkdirSync(shots, { recursive: true });
  // Playwright starts Chromium with a new, empty profile (--user-data-dir) and removes it at
  // close. The flags keep Chromium off the network this machine does not have.
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      // portico's certificate is self-signed, as on a device fresh from the box.
      "--ignore-certificate-errors",
    ],
  });
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 900, height: 700 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);

  // What a person would notice as broken: a script error, a refused style or script (CSP),
  // an asset that does not load.
  const broken = [];
  page.on("pageerror", (e) => broken.push(`script error: ${e.message}`));
  page.on("console", (m) => {
    // A document's own 4xx is logged as "Failed to load resource"; responses are checked below.
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) broken.push(`console: ${m.text()}`);
  });
  page.on("response", (r) => {
    if (r.request().resourceType() !== "document" && r.status() >= 400) broken.push(`${r.status()} for ${r.url()}`);
  });

  let passed = 0;
  let current = "start";
  async function step(name, body) {
    current = name;
    await body();
    if (broken.length) throw new Error(`the page is broken: ${broken.join("; ")}`);
    passed += 1;
    console.log(`ok ${passed} - ${name}`);
  }
  const check = (ok, what) => { if (!ok) throw new Error(what); };
  const path = () => new URL(page.url()).pathname;
  const heading = async () => (await page.locator("h1").textContent()).trim();
  const problem = async () => ((await page.locator(".problem").allTextContents())[0] || "").trim();
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

  // Clicks, and waits until the page it leads to (after any redirect) has loaded.
  async function follow(locator) {
    const loaded = page.waitForEvent("load");
    await locator.click();
    await loaded;
  }
  const submit = (form) => follow(page.locator(`form[action="${form}"] button`));

  async function expectPage(where, title) {
    const said = await problem();
    check(path() === where, `landed on ${path()}, wanted ${where}${said ? `; the page says "${said}"` : ""}`);
    check((await heading()) === title, `${where}: heading "${await heading()}", wanted "${title}"`);
  }

  async function logIn(secret) {
    await page.locator('form[action="/login"] input[name="password"]').fill(secret);
    await submit("/login");
  }

  try {
    await step("set-up with the one-time code lands on /settings, logged in", async () => {
      await page.goto(`${base}/setup`);
      await expectPage("/setup", "Set up this device");
      await page.locator('input[name="code"]').fill(code);
      await page.locator('input[name="password"]').fill(password);
      await page.locator('input[name="again"]').fill(password);
      await shot("01-setup");
      await submit("/setup");
      await expectPage("/settings", "Settings");
      await shot("02-settings");
      const cookies = await context.cookies();
      const session = cookies.find((c) => c.name.startsWith("__Host-"));
      check(session, `no __Host- session cookie; cookies: ${JSON.stringify(cookies)}`);
      check(session.secure && session.httpOnly && session.sameSite === "Strict",
        `the session cookie is not Secure, HttpOnly, SameSite=Strict: ${JSON.stringify(session)}`);
    });

    await step("/setup is closed once the code is spent", async () => {
      await page.goto(`${base}/setup`);
      await expectPage("/login", "Log in");
      await page.goto(`${base}/settings`);
      await expectPage("/settings", "Settings");
    });

    await step("a new label is saved and shown on the status page", async () => {
      await page.locator('form[action="/settings/label"] input[name="label"]').fill(label);
      await submit("/settings/label");
      await expectPage("/settings", "Settings");
      check((await page.locator(".notice").textContent()) === "Saved.", "the settings page says Saved.");
      const shown = await page.locator('form[action="/settings/label"] input[name="label"]').inputValue();
      check(shown === label, `the settings page shows the label as "${shown}"`);
      await shot("03-settings-label");
      await follow(page.locator('a[href="/"]'));
      check(path() === "/", `the status page link led to ${page.url()}`);
      const rendered = (await page.locator('[data-field="label"]').textContent()).trim();
      check(rendered === label, `the status page shows the label as "${rendered}"`);
      // status.js then refreshes every figure from /api/status: the label must survive that too.
      await page.locator("#refreshed").filter({ hasText: /^updated / }).waitFor();
      const refreshed = (await page.locator('[data-field="label"]').textContent()).trim();
      check(refreshed === label, `after /api/status the status page shows the label as "${refreshed}"`);
      await shot("04-status");
    });

    await step("logout lands on /login and ends the session on the device", async () => {
      await page.goto(`${base}/settings`);
      await expectPage("/settings", "Settings");
      const kept = (await context.cookies()).filter((c) => c.name.startsWith("__Host-"));
      await submit("/logout");
      await expectPage("/login", "Log in");
      await shot("05-login");
      await page.goto(`${base}/settings`);
      await expectPage("/login", "Log in");
      // The browser forgot the cookie; a copy of it must be worth nothing on the device too.
      await context.addCookies(kept);
      await page.goto(`${base}/settings`);
      await expectPage("/login", "Log in");
      await context.clearCookies();
    });

    await step("a wrong password is refused with the error shown", async () => {
      await logIn("not the owner's password at all");
      check(path() === "/login", `a wrong password led to ${page.url()}`);
      check((await problem()) === "Wrong password.", `the error reads "${await problem()}"`);
      await shot("06-login-wrong-password");
      await page.goto(`${base}/settings`);
      await expectPage("/login", "Log in");
    });

    await step("the right password logs in again, with the label kept", async () => {
      await logIn(password);
      await expectPage("/settings", "Settings");
      const shown = await page.locator('form[action="/settings/label"] input[name="label"]').inputValue();
      check(shown === label, `after login the label reads "${shown}"`);
      await shot("07-settings-again");
    });
  } catch (e) {
    await page.screenshot({ path: `${shots}/failed.png`, fullPage: true }).catch(() => {});
    console.error(`not ok ${passed + 1} - ${current}\n  ${e.message}\n  at ${page.url()}; page: ${shots}/failed.png`);
    console.log(`${passed} passed, 1 failed`);
    await browser.close();
    process.exit(1);
  }
  await browser.close();
  console.log(`${passed} passed, 0 failed`);
}

main().catch((e) => fail(e.stack || e.message));
