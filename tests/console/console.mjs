// Drives the console in Debian's chromium (headless) through playwright-core, for
// tests/console.rs, against a Faultline that test started. Each step waits for what a user
// would see, with a generous deadline; any failure exits non-zero naming the step.
//
// Environment: FAULTLINE_URL (required); CHROMIUM (default /usr/bin/chromium);
// FAULTLINE_SCREENSHOTS, a folder to write a screenshot of each page into (optional);
// FAULTLINE_READ_TOKEN: instead of the operator's tour, check that a read-only token sees
// every page and can change nothing. Prints one JSON line of findings for the Rust test.

import { chromium } from "playwright-core";

const url = process.env.FAULTLINE_URL;
const shots = process.env.FAULTLINE_SCREENSHOTS;
const DEADLINE = 60_000;

const findings = { steps: [], consoleErrors: [] };

async function step(name, fn) {
  try {
    const result = await fn();
    findings.steps.push(name);
    return result;
  } catch (e) {
    throw new Error(`step "${name}": ${e.message}`);
  }
}

async function postAlerts(alerts) {
  const response = await fetch(`${url}/api/v2/alerts`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(alerts.map((labels) => ({ labels, annotations: { summary: "from the console test" } }))),
  });
  if (!response.ok) throw new Error(`POST /api/v2/alerts: ${response.status} ${await response.text()}`);
}

async function apiGet(path) {
  const response = await fetch(`${url}${path}`);
  if (!response.ok) throw new Error(`GET ${path}: ${response.status}`);
  const json = await response.json();
  return json.data;
}

// Waits until `fn` (run in the page) returns something truthy.
function waitInPage(page, fn, arg) {
  return page.waitForFunction(fn, arg, { timeout: DEADLINE, polling: 200 });
}

async function screenshot(page, name) {
  if (!shots) return;
  // No passing toast in the picture.
  await page.evaluate(() => { document.getElementById("toast").className = ""; });
  await page.waitForTimeout(300);
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // No sandbox (tests may run as root); nothing that would reach out to the network.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync"],
  headless: true,
});
// A read-only token: every page shows, nothing can be changed.
async function readOnly(token) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => findings.consoleErrors.push(e.message));
  await step("without a token the page asks for one", async () => {
    await page.goto(`${url}/`);
    await waitInPage(page, () => (document.querySelector("#main .error") || {}).textContent
      ?.includes("set an API token"));
  });
  await step("with a read token every page shows", async () => {
    await page.evaluate((t) => localStorage.setItem("faultline.token", t), token);
    for (const name of ["overview", "alerts", "silences", "incidents", "rules"]) {
      await page.goto(`${url}/#/${name}`);
      await page.reload();
      await waitInPage(page, (name) => document.getElementById("main").dataset.page === name &&
        !document.querySelector("#main .error"), name);
    }
    await page.waitForSelector("#live.on", { timeout: DEADLINE });
  });
  await step("a read token cannot create a silence", async () => {
    await page.goto(`${url}/#/silences`);
    await page.fill('input[name="matchers"]', '{alertname="Nope"}');
    await page.fill('input[name="createdBy"]', "reader");
    await page.fill('input[name="comment"]', "should be refused");
    await page.click('form.silence-form button[type="submit"]');
    await waitInPage(page, () => document.getElementById("toast").textContent
      .includes("may look but not change"));
  });
}

// The on-call engineer's tour: look, silence, retry, read the plots.
async function operator() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: "light" });
  const page = await context.newPage();
  page.on("console", (m) => { if (m.type() === "error") findings.consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => findings.consoleErrors.push(e.message));
  let navigations = 0;
  page.on("framenavigated", (f) => { if (f === page.mainFrame()) navigations += 1; });

  await step("the page loads and goes live", async () => {
    await page.goto(`${url}/`);
    await page.waitForSelector(".stats", { timeout: DEADLINE });
    await page.waitForSelector("#live.on", { timeout: DEADLINE });
  });

  await step("a new alert appears without reloading the page", async () => {
    await page.goto(`${url}/#/alerts`);
    await page.waitForSelector("form.filters", { timeout: DEADLINE });
    const loaded = navigations;
    await postAlerts([{ alertname: "LiveOne", severity: "page", service: "checkout" }]);
    await page.waitForSelector('tr.alert[data-alertname="LiveOne"]', { timeout: DEADLINE });
    if (navigations !== loaded) throw new Error("the page was reloaded");
  });

  await step("alerts filter with matchers and group by labels", async () => {
    await page.fill('input[name="filter"]', '{alertname="LiveOne"}');
    await page.fill('input[name="group"]', "severity");
    await page.click('form.filters button[type="submit"]');
    await waitInPage(page, () => {
      const rows = [...document.querySelectorAll("tr.alert")];
      return rows.length === 1 && rows[0].dataset.alertname === "LiveOne" &&
        document.querySelector(".group h3").textContent.startsWith('severity="page"');
    });
    await screenshot(page, "alerts");
  });

  await step("Silence this pre-fills the form and previews the alert", async () => {
    await page.click('tr.alert[data-alertname="LiveOne"] a.button');
    await page.waitForSelector("form.silence-form", { timeout: DEADLINE });
    const matchers = await page.inputValue('input[name="matchers"]');
    for (const part of ['alertname="LiveOne"', 'severity="page"', 'service="checkout"']) {
      if (!matchers.includes(part)) throw new Error(`the form has ${matchers}, without ${part}`);
    }
    await waitInPage(page, () => [...document.querySelectorAll(".preview-list li")]
      .some((li) => li.textContent.includes('alertname="LiveOne"')));
  });

  await step("a silence for an alert to come is created from the page", async () => {
    await page.fill('input[name="matchers"]', '{alertname="Muted"}');
    await page.fill('input[name="createdBy"]', "console-test");
    await page.fill('input[name="comment"]', "muted from the console");
    await page.fill('input[name="duration"]', "1h");
    await page.click('form.silence-form button[type="submit"]');
    await waitInPage(page, () => [...document.querySelectorAll("tr.silence code")]
      .some((c) => c.textContent.includes('alertname="Muted"')));
    await screenshot(page, "silences");
  });

  const silenceId = await step("the silence mutes its alert when it fires", async () => {
    const silences = await (await fetch(`${url}/api/v2/silences`)).json();
    const silence = silences.find((s) => s.matchers.some((m) => m.value === "Muted") && s.status.state === "active");
    if (!silence) throw new Error("no active silence for alertname=Muted in the API");
    await postAlerts([{ alertname: "Muted", service: "checkout" }, { alertname: "Loud", service: "checkout" }]);
    await page.goto(`${url}/#/alerts`);
    await waitInPage(page, (id) => {
      const row = document.querySelector('tr.alert[data-alertname="Muted"]');
      return row && row.textContent.includes(`silenced by ${id}`);
    }, silence.id);
    return silence.id;
  });

  await step("a silence is edited from the page", async () => {
    await page.goto(`${url}/#/silences`);
    await page.click(`tr.silence[data-id="${silenceId}"] a.button`);
    await page.waitForSelector("form.silence-form", { timeout: DEADLINE });
    // The form is filled once the silence is fetched: wait for it, on a busy machine too.
    await waitInPage(page, () => document.querySelector('input[name="matchers"]')?.value !== "")
      .catch(() => {});
    const matchers = await page.inputValue('input[name="matchers"]');
    if (matchers !== '{alertname="Muted"}') throw new Error(`the form has ${matchers}`);
    await page.fill('input[name="comment"]', "muted from the console, edited");
    await page.click('form.silence-form button[type="submit"]');
    await waitInPage(page, () => [...document.querySelectorAll("tr.silence")]
      .some((row) => row.textContent.includes("muted from the console, edited")));
  });

  await step("a silence is expired from the page", async () => {
    // Expire a second silence, so that Muted stays muted for the receiver check.
    const response = await fetch(`${url}/api/v2/silences`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ matchers: [{ name: "alertname", value: "Doomed", isRegex: false, isEqual: true }],
        startsAt: new Date().toISOString(), endsAt: new Date(Date.now() + 3600_000).toISOString(),
        createdBy: "console-test", comment: "to be expired" }),
    });
    const { silenceID } = await response.json();
    await page.goto(`${url}/#/silences`);
    await page.click(`tr.silence[data-id="${silenceID}"] button.danger`);
    await waitInPage(page, (id) => {
      const row = document.querySelector(`tr.silence[data-id="${id}"]`);
      return row && !row.querySelector("button.danger");
    }, silenceID);
  });

  const suspects = await step("an incident shows its suspects in order", async () => {
    const incidents = await apiGet("/api/v1/incidents");
    const incident = incidents.find((i) => (i.suspects || []).length >= 2);
    if (!incident) throw new Error("no incident with two suspects in the API");
    await page.goto(`${url}/#/incidents`);
    await page.click(`tr.incident[data-id="${incident.id}"] a`);
    await page.waitForSelector("li.suspect", { timeout: DEADLINE });
    const shown = await page.$$eval("li.suspect", (items) => items.map((li) => ({
      score: Number(li.querySelector(".score").textContent),
      labels: [...li.querySelectorAll(".chip")].map((c) => c.textContent),
    })));
    const expected = incident.suspects.map((s) => ({
      score: Number(s.score.toFixed(2)),
      labels: Object.entries(s.labels).map(([k, v]) => `${k}="${v}"`),
    }));
    if (JSON.stringify(shown) !== JSON.stringify(expected)) {
      throw new Error(`shown ${JSON.stringify(shown)}, the API has ${JSON.stringify(expected)}`);
    }
    for (let i = 1; i < shown.length; i += 1) {
      if (shown[i].score > shown[i - 1].score) throw new Error(`not best first: ${JSON.stringify(shown)}`);
    }
    return shown;
  });

  await step("a dead-lettered action is retried from the page and its decision appears", async () => {
    await page.goto(`${url}/#/incidents`);
    await page.waitForSelector('tr.action[data-state="dead"] button.retry', { timeout: DEADLINE });
    const id = await page.getAttribute('tr.action[data-state="dead"]', "data-id");
    const action = (await apiGet("/api/v1/outbox?state=dead")).find((a) => String(a.id) === id);
    await page.goto(`${url}/#/incidents?id=${encodeURIComponent(action.incidentId)}`);
    await page.waitForSelector(`tr.action[data-id="${id}"] button.retry`, { timeout: DEADLINE });
    await page.click(`tr.action[data-id="${id}"] button.retry`);
    // The decision arrives through the event stream: no reload, no navigation.
    await page.waitForSelector('tr.decision[data-decision="retried"]', { timeout: DEADLINE });
    await screenshot(page, "incident");
  });

  await step("the plots render with data", async () => {
    await page.goto(`${url}/#/overview`);
    for (const id of ["plot-firing", "plot-ingest", "plot-deliveries"]) {
      await waitInPage(page, (id) => {
        const path = document.querySelector(`#${id} path.line`);
        return path && (path.getAttribute("d").match(/[ML]/g) || []).length >= 2;
      }, id);
    }
    await screenshot(page, "overview");
    await page.goto(`${url}/#/rules`);
    await waitInPage(page, () => {
      const path = document.querySelector("#plot-evaluation path.line");
      return path && (path.getAttribute("d").match(/[ML]/g) || []).length >= 2;
    });
    await page.waitForSelector("tr.rule", { timeout: DEADLINE });
    await screenshot(page, "rules");
  });

  await step("phone width in the dark theme", async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: "dark", isMobile: true });
    const small = await phone.newPage();
    small.on("pageerror", (e) => findings.consoleErrors.push(e.message));
    await small.goto(`${url}/#/overview`);
    await small.waitForSelector(".stats", { timeout: DEADLINE });
    const theme = await small.evaluate(() => document.documentElement.dataset.theme);
    if (theme !== "dark") throw new Error(`theme ${theme}`);
    const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 0) throw new Error(`the page is ${overflow}px wider than the phone`);
    await screenshot(small, "overview-phone-dark");
    await phone.close();
  });
  findings.silenceId = silenceId;
  findings.suspects = suspects;
}

try {
  if (process.env.FAULTLINE_READ_TOKEN) {
    await readOnly(process.env.FAULTLINE_READ_TOKEN);
  } else {
    await operator();
  }
  if (findings.consoleErrors.length > 0) {
    throw new Error(`console errors: ${JSON.stringify(findings.consoleErrors)}`);
  }
  console.log(JSON.stringify(findings));
} catch (e) {
  console.error(e.message);
  console.log(JSON.stringify(findings));
  process.exitCode = 1;
} finally {
  await browser.close();
}
