import { expect, type Locator, type Page } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import fs from 'node:fs';
import path from 'node:path';

/** The one-time setup link the server wrote into its data directory. */
export function setupUrl(): string {
  const dir = process.env.BITGATE_E2E_DATA_DIR;
  if (!dir) throw new Error('BITGATE_E2E_DATA_DIR is not set');
  return fs.readFileSync(path.join(dir, 'setup-url'), 'utf8').trim();
}

/** Islands hydrate one after another on idle: wait for all of them. */
export async function waitForIslands(page: Page) {
  const islands = page.locator('[data-hydrated]');
  const count = await islands.count();
  for (let i = 0; i < count; i++) {
    await expect(islands.nth(i)).toHaveAttribute('data-hydrated', 'true', { timeout: 20_000 });
  }
}

/**
 * Collects console errors and page errors (CSP violations and failed asset
 * loads show up there). A form answered with its page and a 401 or 422, and an
 * error page the test leads to on purpose (400), are logged by Chromium
 * too: those are the tests' own doing, not errors.
 */
export function watchConsole(page: Page): string[] {
  const errors: string[] = [];
  const formOutcome = /Failed to load resource: the server responded with a status of (400|401|422)/;
  page.on('console', (message) => {
    if (message.type() === 'error' && !formOutcome.test(message.text())) errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(error.message));
  return errors;
}

export const admin = {
  name: 'Ada Lovelace',
  email: 'ada@example.com',
  password: 'correct horse battery staple',
};

/** Logs the first admin in through the login form. */
export async function logIn(page: Page) {
  await page.goto('/login');
  await page.getByLabel('Email').fill(admin.email);
  await page.getByLabel('Password', { exact: true }).fill(admin.password);
  await page.getByRole('button', { name: 'Log in' }).click();
}

/** The widths every page is looked at: a phone's and a laptop's. */
export const widths = [
  { width: 390, height: 844 },
  { width: 1280, height: 800 },
];

/**
 * What axe-core finds serious or critical on the page as it is now, one
 * readable paragraph per rule: its id, impact and help, how many elements,
 * the first few of them (selector, html, why) and the rule's documentation.
 * Every rule axe-core runs by default (WCAG 2.x A and AA, and its best
 * practices) counts; moderate and minor findings do not fail.
 */
export async function accessibilityProblems(page: Page): Promise<string[]> {
  const results = await new AxeBuilder({ page }).analyze();
  return results.violations
    .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
    .map((violation) => {
      const shown = violation.nodes.slice(0, 3).map((node) => {
        const html = node.html.replace(/\s+/g, ' ');
        const why = (node.failureSummary ?? '').split('\n').map((line) => line.trim())
          .filter((line) => line && !/^Fix (any|all) of the following:$/.test(line)).join('; ');
        return `    ${node.target.join(' >> ')}\n      ${html.length > 200 ? `${html.slice(0, 200)}…` : html}` +
          (why ? `\n      ${why}` : '');
      });
      const more = violation.nodes.length > shown.length ? `\n    … and ${violation.nodes.length - shown.length} more` : '';
      return `${violation.id} (${violation.impact}): ${violation.help}, ${violation.nodes.length} element(s)\n` +
        `${shown.join('\n')}${more}\n    ${violation.helpUrl}`;
    });
}

/**
 * Fails the test (softly: the test goes on, so that one run lists every
 * page's problems) when axe-core finds a serious or critical problem.
 */
export async function expectAccessible(page: Page, what: string) {
  const problems = await accessibilityProblems(page);
  expect.soft(problems.length, `axe-core on ${what}:\n${problems.join('\n')}\n`).toBe(0);
}

/**
 * A full-page screenshot as `{dir}/{name}.png` when BITGATE_SCREENSHOTS
 * names a directory (relative to end2end/; scripts/screenshots sets it);
 * nothing otherwise.
 */
export async function saveScreenshot(page: Page, name: string) {
  const dir = process.env.BITGATE_SCREENSHOTS;
  if (!dir) return;
  fs.mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: path.join(path.resolve(dir), `${name}.png`), fullPage: true, animations: 'disabled' });
}

/**
 * The page as it is, at a phone's and a laptop's width in turn: no wider
 * than the window (a phone browser would zoom such a page out; wide tables
 * scroll in their own box), no serious accessibility problem, and its
 * screenshot as `{width}-{name}.png` when asked. Failures are soft, so that
 * a walk reports every page. The window is left at its last width.
 */
export async function checkAtEveryWidth(page: Page, name: string) {
  for (const size of widths) {
    await page.setViewportSize(size);
    const measured = await page.evaluate(() => ({ page: document.documentElement.scrollWidth, window: window.innerWidth }));
    expect.soft(measured.page, `${name} at ${size.width} px is wider than the window`).toBeLessThanOrEqual(measured.window);
    await expectAccessible(page, `${name} at ${size.width} px`);
    await saveScreenshot(page, `${size.width}-${name}`);
  }
}

/** Clicks `button`, which posts its form, and gives the status of the page that answers. */
export async function submitForm(page: Page, button: Locator): Promise<number> {
  const answer = page.waitForResponse((r) => r.request().method() === 'POST' && r.request().isNavigationRequest());
  await button.click();
  return (await answer).status();
}
