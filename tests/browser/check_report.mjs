// Opens one HTML file in headless Debian chromium through playwright-core and reports
// what a person's browser would have done with it: console errors, page errors, and
// every network request other than the file itself. Takes a full-page screenshot.
//
// Usage: NODE_PATH=<playwright-core node_modules> node check_report.mjs REPORT.html SHOT.png [HEIGHT]
// (HEIGHT: keep only the top HEIGHT pixels of the full page, for a picture in the docs.)
// (`.ci/install-chromium` prints that node_modules directory.)
// Prints one JSON object on stdout:
//   {"title", "console_errors": [...], "page_errors": [...], "requests": [...],
//    "text_length", "screenshot"}
// Exit 0 when the page loaded (the caller judges the lists), 2 on a usage or launch error.

import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [file, shot, height] = process.argv.slice(2);
const maxHeight = height === undefined ? undefined : Number.parseInt(height, 10);
if (!file || !shot || (height !== undefined && !(maxHeight > 0))) {
  console.error("usage: node check_report.mjs REPORT.html SCREENSHOT.png [HEIGHT]");
  process.exit(2);
}

// ES modules ignore NODE_PATH; resolve playwright-core through it by hand.
const require = createRequire(import.meta.url);
let chromium;
try {
  const paths = (process.env.NODE_PATH || "").split(":").filter(Boolean);
  ({ chromium } = require(require.resolve("playwright-core", { paths })));
} catch (e) {
  console.error(`cannot load playwright-core (run .ci/install-chromium and set NODE_PATH): ${e.message}`);
  process.exit(2);
}

const url = pathToFileURL(resolve(file)).href;
const profile = mkdtempSync(join(tmpdir(), "lexecon-chromium-"));
let browser;
try {
  // A persistent context on a fresh profile directory: playwright passes it to chromium
  // as --user-data-dir (it refuses that flag among the args).
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const page = browser.pages()[0] ?? (await browser.newPage());
  const consoleErrors = [];
  const pageErrors = [];
  const requests = [];
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("request", (r) => {
    if (r.url() !== url) requests.push(r.url());
  });
  await page.goto(url, { waitUntil: "load" });
  // Anything the page would fetch after load (fonts, images, scripts) has had its chance.
  await page.waitForTimeout(300);
  const clip = maxHeight ? { x: 0, y: 0, width: 1280, height: maxHeight } : undefined;
  await page.screenshot({ path: shot, fullPage: true, clip });
  const title = await page.title();
  const textLength = (await page.innerText("body")).length;
  console.log(
    JSON.stringify({
      title,
      console_errors: consoleErrors,
      page_errors: pageErrors,
      requests,
      text_length: textLength,
      screenshot: resolve(shot),
    }),
  );
} catch (e) {
  console.error(`browser check failed: ${e.message}`);
  process.exitCode = 2;
} finally {
  if (browser) await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
