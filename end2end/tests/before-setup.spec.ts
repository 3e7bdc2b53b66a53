import { test, expect } from '@playwright/test';
import { admin, checkAtEveryWidth, setupUrl, submitForm, waitForIslands, watchConsole } from './helpers';

// The setup link's page, which no later test can see: it runs before
// first-run.spec.ts (spec files run in alphabetical order), which uses the
// link. Opening it, and a refused form, leave the link as it was.

test('the setup page and its refused form, at 390 px and 1280 px', async ({ page }) => {
  const errors = watchConsole(page);
  const answer = await page.goto(setupUrl());
  expect(answer?.status()).toBe(200);
  await expect(page.getByRole('heading', { name: 'Set up Bitgate' })).toBeVisible();
  await waitForIslands(page);
  await checkAtEveryWidth(page, 'setup');

  await page.getByLabel('Your name').fill(admin.name);
  await page.getByLabel('Email').fill(admin.email);
  await page.getByLabel('Password', { exact: true }).fill('short');
  expect(await submitForm(page, page.getByRole('button', { name: 'Create administrator' }))).toBe(422);
  await expect(page.locator('.field-error', { hasText: 'Use at least 12 characters.' })).toBeVisible();
  await waitForIslands(page);
  await checkAtEveryWidth(page, 'setup-refused');
  expect(errors).toEqual([]);
});
