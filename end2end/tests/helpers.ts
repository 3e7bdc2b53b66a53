import { expect, type Page } from '@playwright/test';
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
