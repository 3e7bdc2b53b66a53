import { test, expect } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { admin, logIn, setupUrl, waitForIslands, watchConsole } from './helpers';

// One story, in order: a fresh install is set up through its link, then
// the admin logs out and in again.
test.describe.configure({ mode: 'serial' });

test('the setup link creates the first admin, with a live password field', async ({ page }) => {
  const errors = watchConsole(page);
  const started = Date.now();
  await page.goto(setupUrl());
  await expect(page.getByRole('heading', { name: 'Set up Bitgate' })).toBeVisible();
  await waitForIslands(page);
  const hydratedAfter = Date.now() - started;
  test.info().annotations.push({ type: 'hydrated-ms', description: String(hydratedAfter) });

  // The island responds: Show reveals the password, the hint counts live.
  const password = page.getByLabel('Password', { exact: true });
  await expect(password).toHaveAttribute('type', 'password');
  await password.fill('short');
  await expect(page.getByText('7 more characters needed (at least 12).')).toBeVisible();
  await page.getByRole('button', { name: 'Show' }).click();
  await expect(password).toHaveAttribute('type', 'text');
  await page.getByRole('button', { name: 'Hide' }).click();
  await expect(password).toHaveAttribute('type', 'password');

  // A refused form keeps what was typed and says what to fix.
  await page.getByLabel('Your name').fill(admin.name);
  await page.getByLabel('Email').fill(admin.email);
  await page.getByRole('button', { name: 'Create administrator' }).click();
  await expect(page.locator('.field-error', { hasText: 'Use at least 12 characters.' })).toBeVisible();
  await expect(page.getByLabel('Email')).toHaveValue(admin.email);

  await page.getByLabel('Password', { exact: true }).fill(admin.password);
  await page.getByRole('button', { name: 'Create administrator' }).click();
  await expect(page).toHaveURL('/');
  await expect(page.getByText(`Welcome, ${admin.name}.`)).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Integrations', exact: true })).toBeVisible();
  expect(errors).toEqual([]);
});

test('the setup link cannot be used twice', async ({ page }) => {
  await page.goto(setupUrl());
  await expect(page.getByText('This setup link has been used already.')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Create administrator' })).toHaveCount(0);
});

test('the admin logs out and in again; a wrong password is refused', async ({ page, context }) => {
  const errors = watchConsole(page);
  await page.goto('/login');
  await page.getByLabel('Email').fill(admin.email);
  await page.getByLabel('Password', { exact: true }).fill('not the password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByText('The email or password is incorrect.')).toBeVisible();
  await expect(page.getByLabel('Email')).toHaveValue(admin.email);

  await page.getByLabel('Password', { exact: true }).fill(admin.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page).toHaveURL('/');
  await expect(page.locator('header.topbar > .account .account-name')).toHaveText(admin.name);

  // The copy button is an island too, and it responds.
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await waitForIslands(page);
  await page.getByRole('button', { name: 'Copy' }).click();
  await expect(page.getByRole('button', { name: 'Copied' })).toBeVisible();

  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page).toHaveURL(/\/login\?reason=logged_out/);
  await expect(page.getByText('You have logged out.')).toBeVisible();

  // After logging out the console is closed again, and the login returns
  // to the page that was asked for.
  await page.goto('/?from=bookmark');
  await expect(page).toHaveURL(/\/login\?next=/);
  await page.getByLabel('Email').fill(admin.email);
  await page.getByLabel('Password', { exact: true }).fill(admin.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page).toHaveURL('/?from=bookmark');
  expect(errors).toEqual([]);
});

test('an API token is created, shown once, and revoked', async ({ page, context }) => {
  const errors = watchConsole(page);
  await page.goto('/login?next=/tokens');
  await page.getByLabel('Email').fill(admin.email);
  await page.getByLabel('Password', { exact: true }).fill(admin.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page).toHaveURL('/tokens');
  await expect(page.getByText('No API tokens')).toBeVisible();

  await page.getByLabel('Name').fill('terraform');
  await page.getByRole('button', { name: 'Create token' }).click();
  await expect(page.getByText('Token “terraform” created')).toBeVisible();
  const secret = await page.locator('.reveal code').textContent();
  expect(secret).toMatch(/^bgt_[A-Za-z0-9_-]{43}$/);
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await waitForIslands(page);
  await page.locator('.reveal').getByRole('button', { name: 'Copy' }).click();
  await expect(page.locator('.reveal').getByRole('button', { name: 'Copied' })).toBeVisible();

  await page.goto('/tokens');
  await expect(page.getByRole('cell', { name: 'terraform', exact: true })).toBeVisible();
  await expect(page.getByText(secret!)).toHaveCount(0);
  await page.getByRole('button', { name: 'Revoke terraform' }).click();
  await expect(page.getByText('The token “terraform” is revoked: it no longer works.')).toBeVisible();
  await expect(page.getByText('No API tokens')).toBeVisible();
  expect(errors).toEqual([]);
});

test('a space is created and a member added', async ({ page }) => {
  const errors = watchConsole(page);
  await page.goto('/login?next=/spaces');
  await page.getByLabel('Email').fill(admin.email);
  await page.getByLabel('Password', { exact: true }).fill(admin.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page).toHaveURL('/spaces');

  await page.getByLabel('Name').fill('platform');
  await page.getByRole('button', { name: 'Create space' }).click();
  await expect(page.getByText('Space “platform” created.')).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Space platform' })).toBeVisible();

  // The admin adds themself with a lower role on the new space (they stay
  // account admin through root).
  await page.getByLabel('Email').fill(admin.email);
  await page.getByLabel('Role').selectOption('read');
  await page.getByRole('button', { name: 'Add member' }).click();
  await expect(page.getByText(`${admin.email} now has the role read here.`)).toBeVisible();
  await expect(page.getByRole('cell', { name: admin.email, exact: true })).toBeVisible();

  await page.getByRole('button', { name: `Remove ${admin.email}` }).click();
  await expect(page.getByText('The member was removed.')).toBeVisible();
  expect(errors).toEqual([]);
});

test('the admin creates a user, disables and enables them, and finds it in the audit log', async ({ page }) => {
  const errors = watchConsole(page);
  await page.goto('/login?next=/users');
  await page.getByLabel('Email').fill(admin.email);
  await page.getByLabel('Password', { exact: true }).fill(admin.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page).toHaveURL('/users');

  await page.getByLabel('Email').fill('grace@example.com');
  await page.getByLabel('Name').fill('Grace Hopper');
  await page.getByLabel('Initial password').fill('a long enough password');
  await page.getByRole('button', { name: 'Create user' }).click();
  await expect(page.getByText('grace@example.com can now log in.')).toBeVisible();
  const row = page.getByRole('row', { name: /grace@example.com/ });
  await expect(row.getByRole('cell', { name: 'active' })).toBeVisible();

  await page.getByRole('button', { name: 'Disable grace@example.com' }).click();
  await expect(page.getByText('grace@example.com is disabled')).toBeVisible();
  await expect(row.getByRole('cell', { name: 'disabled' })).toBeVisible();
  await page.getByRole('button', { name: 'Enable grace@example.com' }).click();
  await expect(page.getByText('grace@example.com is enabled again.')).toBeVisible();

  await page.getByRole('link', { name: 'Audit log' }).click();
  await expect(page.getByRole('heading', { name: 'Audit log' })).toBeVisible();
  await page.getByLabel('Action').selectOption('user.disabled');
  await page.getByRole('button', { name: 'Filter' }).click();
  await expect(page).toHaveURL(/action=user.disabled/);
  await expect(page.locator('table.audit tbody tr')).toHaveCount(1);
  await expect(page.getByRole('cell', { name: 'user grace@example.com' })).toBeVisible();
  expect(errors).toEqual([]);
});

test('a Data Center integration is created through the wizard, and its webhook secret revealed', async ({ page }) => {
  const errors = watchConsole(page);
  const simulator = process.env.BITGATE_E2E_SIMULATOR_URL!;
  await logIn(page);
  await page.getByRole('link', { name: 'New integration' }).click();
  // First the provider, the two side by side.
  await expect(page.getByRole('link', { name: /^Bitbucket Cloud/ })).toBeVisible();
  await page.getByRole('link', { name: /^Bitbucket Data Center/ }).click();
  await expect(page.getByRole('heading', { name: 'New Bitbucket Data Center integration' })).toBeVisible();

  await waitForIslands(page);
  // The endpoint the name will give, as it is typed.
  await page.getByLabel('Name', { exact: true }).fill('DC main!');
  await expect(page.locator('.endpoint-preview')).toHaveText(/\/webhooks\/bitbucket\/dc-main$/);
  await page.getByLabel('Name', { exact: true }).fill('dc-main');
  // The description, previewed as the details page will render it (safely).
  await page.getByLabel('Description').fill('Our **main** Bitbucket <b>raw</b>');
  await page.getByRole('button', { name: 'Preview' }).click();
  await expect(page.locator('.preview strong')).toHaveText('main');
  await expect(page.locator('.preview b')).toHaveCount(0);
  // Step 2's token page, as a link once the API URL is typed.
  await expect(page.locator('.token-page')).toHaveText('{user-facing URL}/plugins/servlet/access-tokens/manage');
  await expect(page.getByRole('link', { name: /access-tokens/ }), 'not a link until there is an address').toHaveCount(0);
  await page.getByLabel('API URL').fill(simulator);
  await expect(page.getByRole('link', { name: `${simulator}/plugins/servlet/access-tokens/manage` })).toHaveAttribute('target', '_blank');
  await page.getByLabel('Username').fill('jcitizen');
  await page.getByLabel('HTTP access token').fill('BBDC-not-the-token');
  // While Bitbucket is asked, the checks are listed with the time spent, in
  // view, and the button is disabled (the submissions are held back and
  // counted here, so that the wait can be seen).
  await page.evaluate(() => {
    const w = window as unknown as { submits: number };
    w.submits = 0;
    document.querySelector('form.wizard')!.addEventListener('submit', (e) => { e.preventDefault(); w.submits += 1; });
  });
  const save = page.getByRole('button', { name: 'Test connection and save' });
  await save.click();
  await expect(page.getByText('Asking Bitbucket…')).toBeVisible();
  await expect(page.locator('section.progress')).toBeInViewport();
  await expect(page.locator('.check.pending')).toHaveCount(5);
  await expect(page.getByText(/Asking Bitbucket… [1-9] s/)).toBeVisible();
  await expect(save).toHaveAttribute('aria-disabled', 'true');
  // A second click (forced: Playwright waits for an aria-disabled button to
  // be enabled; a person's click goes through), or Enter in a field, sends nothing more.
  await save.click({ force: true });
  await page.getByLabel('Username').press('Enter');
  expect(await page.evaluate(() => (window as unknown as { submits: number }).submits)).toBe(1);
  await page.evaluate(() => (document.querySelector('form.wizard') as HTMLFormElement).submit());
  await expect(page.locator('.check.failed', { hasText: 'refused the token' })).toBeVisible();
  await expect(page.getByLabel('API URL')).toHaveValue(simulator);

  await page.getByLabel('HTTP access token').fill('BBDC-demo-token-0000000000000000000000000000');
  await page.getByRole('button', { name: 'Test connection and save' }).click();
  await expect(page.getByText('Integration “dc-main” created: every check passed.')).toBeVisible();
  // What was proven: every check, passed.
  await expect(page.locator('.flash .check.ok')).toHaveCount(5);
  await expect(page.getByText('repo:refs_changed')).toBeVisible();
  await expect(page.getByText('Waiting for the first delivery.')).toBeVisible();
  // The secret is revealed in place: the page stays where it is.
  await waitForIslands(page);
  const details = page.url();
  await page.getByRole('button', { name: 'Reveal secret' }).click();
  await expect(page.getByRole('button', { name: 'Reveal secret' })).toHaveCount(0);
  await expect(page.locator('.reveal-secret .copy-value code')).toHaveText(/^[A-Za-z0-9_-]{20,}$/);
  expect(page.url()).toBe(details);

  // Bitbucket's first delivery shows up on the open page, without a reload.
  await waitForIslands(page);
  const shown = page.locator('section.panel', { hasText: 'Delivery log' }).locator('.copy-value code');
  const [url, secret] = [await shown.nth(0).innerText(), await shown.nth(1).innerText()];
  expect(url).toMatch(/\/webhooks\/bitbucket\/dc-main$/);
  execFileSync('../target/release/bitbucket-simulator', ['send', '--url', url, `--secret=${secret}`, '--event', 'repo:refs_changed']);
  await expect(page.locator('.delivery-time')).toHaveText(/^Last delivery: \d{4}-\d\d-\d\d/);
  await expect(page.getByText('Waiting for the first delivery.')).toHaveCount(0);
  await page.goto('/');
  await expect(page.getByRole('link', { name: 'dc-main' })).toBeVisible();
  expect(errors).toEqual([]);
});

test('the integration is edited, a stack picks a repository from Bitbucket, and the integration is deleted', async ({ page, context }) => {
  const errors = watchConsole(page);
  await logIn(page);
  await page.getByRole('link', { name: 'dc-main' }).click();

  // The webhook's URL is copied with its button.
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await waitForIslands(page);
  await page.locator('.copy-value', { hasText: '/webhooks/bitbucket/dc-main' }).getByRole('button', { name: 'Copy' }).click();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toMatch(/\/webhooks\/bitbucket\/dc-main$/);

  // Edit: prefilled, the token left empty keeps the stored one.
  await page.getByRole('link', { name: 'Edit' }).click();
  await expect(page.getByRole('heading', { name: 'Edit dc-main' })).toBeVisible();
  await expect(page.getByLabel('HTTP access token')).toHaveValue('');
  await page.getByLabel('Labels').fill('prod, eu');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await expect(page.getByText('Integration “dc-main” saved.')).toBeVisible();
  await expect(page.getByText('prod, eu')).toBeVisible();

  // A stack: space, integration, then a repository Bitbucket shows it.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Stacks' }).click();
  await page.getByRole('link', { name: 'New stack' }).click();
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByLabel('Integration').selectOption({ label: 'dc-main (Bitbucket Data Center)' });
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByLabel('2. Find the repository').fill('my-repo');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('radio').check();
  await page.getByLabel('Stack name').fill('web');
  await page.getByRole('button', { name: 'Create stack' }).click();
  await expect(page.getByText('Stack “web” created.')).toBeVisible();
  await expect(page.getByText('/my-repo')).toBeVisible();

  // Delete: the page names the stack it detaches and wants the name typed.
  await page.getByRole('link', { name: 'dc-main' }).click();
  await expect(page.getByRole('link', { name: 'web', exact: true })).toBeVisible();
  await page.getByRole('link', { name: 'Delete' }).click();
  await expect(page.getByRole('cell', { name: 'web' })).toBeVisible();
  await page.getByLabel('Type dc-main to confirm').fill('dc-mian');
  await page.getByRole('button', { name: 'Delete this integration' }).click();
  await expect(page.locator('.field-error', { hasText: 'to delete it' })).toBeVisible();
  await page.getByLabel('Type dc-main to confirm').fill('dc-main');
  await page.getByRole('button', { name: 'Delete this integration' }).click();
  await expect(page.getByText('1 stack(s) detached')).toBeVisible();
  await page.goto('/stacks');
  await expect(page.getByRole('row', { name: /web/ }).getByText('detached')).toBeVisible();
  expect(errors).toEqual([]);
});

test('a Cloud integration is approved in Bitbucket: Cancel first, then Grant access', async ({ page, context }) => {
  const errors = watchConsole(page);
  await logIn(page);
  await page.getByRole('link', { name: 'New integration' }).click();
  await page.getByRole('link', { name: /^Bitbucket Cloud/ }).click();
  await expect(page.getByRole('heading', { name: 'New Bitbucket Cloud integration' })).toBeVisible();

  // The callback URL to paste into the consumer, with its copy button.
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await waitForIslands(page);
  await page.locator('.copy-value', { hasText: '/oauth/bitbucket/callback' }).getByRole('button', { name: 'Copy' }).click();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toMatch(/\/oauth\/bitbucket\/callback$/);

  await page.getByLabel('Name', { exact: true }).fill('cloud-main');
  await page.getByLabel('Workspace ID').fill('acme');
  await page.getByLabel('Key', { exact: true }).fill('demo-consumer-key');
  await page.getByLabel('Secret', { exact: true }).fill('not-the-secret');
  await page.getByRole('button', { name: 'Check consumer and save' }).click();
  await expect(page.locator('.check.failed', { hasText: 'rejected the consumer key or secret' })).toBeVisible();
  await page.getByLabel('Secret', { exact: true }).fill('demo-consumer-secret-0000000000');
  await page.getByRole('button', { name: 'Check consumer and save' }).click();
  await expect(page.getByText('Bitbucket accepted the consumer. Now click Connect')).toBeVisible();

  // Bitbucket's approval page: Cancel, and Bitgate says access was denied.
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await expect(page.getByRole('heading', { name: /Bitgate is requesting access/ })).toBeVisible();
  await page.getByRole('button', { name: 'Cancel' }).click();
  await expect(page.getByRole('heading', { name: 'Access was denied in Bitbucket' })).toBeVisible();
  await page.getByRole('link', { name: 'Try again' }).click();

  // Grant access: back on the integration, connected.
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await page.getByRole('button', { name: 'Grant access' }).click();
  await expect(page.getByText('Connected: Bitgate acts as Ada Lovelace (ada)')).toBeVisible();
  await expect(page.locator('.state-line .badge.good', { hasText: 'connected' })).toBeVisible();
  await expect(page.getByText('repo:push')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Reconnect' })).toBeVisible();
  expect(errors).toEqual([]);
});

test('a Data Center integration through an OAuth 2.0 application link: Deny first, then Allow', async ({ page, context }) => {
  const errors = watchConsole(page);
  const simulator = process.env.BITGATE_E2E_SIMULATOR_URL!;
  // The simulator's demo link (printed by `bitbucket-simulator`).
  const [clientId, clientSecret] = ['7c1e0b5fa29d4e8b93d6c0f4a1b2e3d4', '3a9f1c7e5b2d8064a1e9c3f7b5d2086e4c1a9f3e7b5d2c8064a1e3c9f7b5d20e'];
  await logIn(page);
  await page.getByRole('link', { name: 'New integration' }).click();
  await page.getByRole('link', { name: /^Bitbucket Data Center/ }).click();
  await waitForIslands(page);

  // The choice of how to sign in shows that way's steps and fields only.
  await expect(page.getByLabel('HTTP access token')).toBeVisible();
  await expect(page.getByLabel('Client ID')).toBeHidden();
  await page.getByLabel(/OAuth 2.0 application link/).check();
  await expect(page.getByLabel('HTTP access token')).toBeHidden();
  await expect(page.getByText('External application')).toBeVisible();
  await expect(page.locator('.auth-oauth2').getByText('REPO_ADMIN', { exact: true })).toBeVisible();
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await page.locator('.auth-oauth2 .copy-value', { hasText: '/oauth/bitbucket/callback' }).getByRole('button', { name: 'Copy' }).click();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toMatch(/\/oauth\/bitbucket\/callback$/);

  await page.getByLabel('Name', { exact: true }).fill('dc-link');
  await page.getByLabel('API URL').fill(simulator);
  await page.getByLabel('Client ID').fill(clientId);
  await page.getByLabel('Client secret').fill('not-the-secret');
  await page.getByRole('button', { name: 'Test connection and save' }).click();
  await expect(page.locator('.check.failed', { hasText: 'rejected the client ID or secret' })).toBeVisible();
  // Answered again with the same choice and what was typed (but the secret).
  await expect(page.getByLabel('Client ID')).toHaveValue(clientId);
  await page.getByLabel('Client secret').fill(clientSecret);
  await page.getByRole('button', { name: 'Test connection and save' }).click();
  await expect(page.getByText('Bitbucket accepted the application link. Now click Connect')).toBeVisible();
  await expect(page.locator('.state-line .badge.waiting', { hasText: 'pending approval' })).toBeVisible();

  // Bitbucket's consent page names the permission; Deny, and Bitgate says so.
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await expect(page.getByText('Repositories: Admin')).toBeVisible();
  await page.getByRole('button', { name: 'Deny' }).click();
  await expect(page.getByRole('heading', { name: 'Access was denied in Bitbucket' })).toBeVisible();
  await page.getByRole('link', { name: 'Try again' }).click();

  // Allow: back on the integration, connected as the user who approved.
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await page.getByRole('button', { name: 'Allow' }).click();
  await expect(page.getByText('Connected: Bitgate acts as jcitizen in Bitbucket Data Center.')).toBeVisible();
  await expect(page.locator('.state-line .badge.good', { hasText: 'connected' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Reconnect' })).toBeVisible();
  await expect(page.getByText(clientSecret)).toHaveCount(0);
  expect(errors).toEqual([]);
});

test('a legacy OAuth 1.0a link: its public key pasted into Bitbucket, Deny first, then Allow', async ({ page, context }) => {
  const errors = watchConsole(page);
  const simulator = process.env.BITGATE_E2E_SIMULATOR_URL!;
  await logIn(page);
  await page.getByRole('link', { name: 'New integration' }).click();
  await page.getByRole('link', { name: /^Bitbucket Data Center/ }).click();
  await waitForIslands(page);
  await page.getByLabel(/OAuth 1.0a application link/).check();
  await expect(page.getByLabel('HTTP access token')).toBeHidden();
  await expect(page.getByLabel('Client ID')).toBeHidden();
  await expect(page.getByLabel('Consumer key')).toBeVisible();
  await page.getByLabel('Name', { exact: true }).fill('dc-legacy');
  await page.getByLabel('API URL').fill(simulator);
  await page.getByRole('button', { name: 'Test connection and save' }).click();
  await expect(page.locator('.state-line .badge.waiting', { hasText: 'pending approval' })).toBeVisible();

  // The page says what to enter in Bitbucket's application link, with the
  // public key Bitgate made (its private key never shows).
  const link = page.locator('section.application-link');
  await expect(link.getByRole('heading', { name: 'Application link in Bitbucket' })).toBeVisible();
  const consumerKey = await link.locator('.copy-value code').nth(0).innerText();
  expect(consumerKey).toBe('bitgate-dc-legacy');
  await expect(link.locator('.copy-value code').nth(1)).toContainText('-----BEGIN PUBLIC KEY-----');
  // The key as a file, whole, as an admin downloads it to paste.
  const keyFile = await page.request.get((await link.getByRole('link', { name: 'The public key as a file' }).getAttribute('href'))!);
  expect(keyFile.status()).toBe(200);
  const publicKey = await keyFile.text();
  expect(publicKey).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
  await expect(page.getByText(/BEGIN (RSA )?PRIVATE KEY/)).toHaveCount(0);

  // Connect before the link exists: Bitgate says what Bitbucket lacks.
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await expect(page.getByText('has no application link with the consumer key bitgate-dc-legacy')).toBeVisible();

  // The admin creates the link in Bitbucket, pasting the key.
  await page.goto(`${simulator}/plugins/servlet/applinks/listApplicationLinks`);
  await page.getByLabel('Application name').fill('Bitgate (dc-legacy)');
  await page.getByLabel('Consumer key').fill(consumerKey);
  await page.getByLabel('Consumer name').fill('Bitgate (dc-legacy)');
  await page.getByLabel('Public key').fill(publicKey);
  await page.getByRole('button', { name: 'Create' }).click();
  await expect(page.getByText('bitgate-dc-legacy')).toBeVisible();
  await page.goto('/');
  await page.getByRole('link', { name: 'dc-legacy' }).click();

  // Deny, then Allow: connected as the user who approved.
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await page.getByRole('button', { name: 'Deny' }).click();
  await expect(page.getByRole('heading', { name: 'Access was denied in Bitbucket' })).toBeVisible();
  await page.getByRole('link', { name: 'Try again' }).click();
  await page.getByRole('button', { name: 'Connect', exact: true }).click();
  await page.getByRole('button', { name: 'Allow' }).click();
  await expect(page.getByText('Connected: Bitgate acts as jcitizen in Bitbucket Data Center.')).toBeVisible();
  await expect(page.locator('.state-line .badge.good', { hasText: 'connected' })).toBeVisible();
  expect(errors).toEqual([]);
});

test('integrations are exported as YAML, and a file is imported: preview, then apply', async ({ page }) => {
  const errors = watchConsole(page);
  const simulator = process.env.BITGATE_E2E_SIMULATOR_URL!;
  await logIn(page);
  await page.getByRole('link', { name: 'Import or export YAML' }).click();
  await expect(page.getByRole('heading', { name: 'Import integrations' })).toBeVisible();

  // The export downloads what the admin administers, secrets as placeholders.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download YAML' }).click()]);
  expect(download.suggestedFilename()).toBe('bitgate-integrations.yaml');
  const exported = fs.readFileSync(await download.path(), 'utf8');
  expect(exported).toContain('name: cloud-main');
  expect(exported).toContain('<fill in: the secret of OAuth consumer demo-consumer-key>');

  // A file with a mistake: every problem listed, the text kept to fix it.
  await page.getByLabel('Or paste it').fill('version: 1\nintegrations:\n- {name: broken, provider: bitbucket_gitlab}\n');
  await page.getByRole('button', { name: 'Preview' }).click();
  await expect(page.getByText('Nothing was imported: fix')).toBeVisible();
  await expect(page.locator('ul.problems code', { hasText: 'integrations[0] (broken).provider' })).toBeVisible();
  await expect(page.getByLabel('Or paste it')).toHaveValue(/bitbucket_gitlab/);

  // A CDS file, uploaded: the preview says what will be created, then Apply writes it.
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bitgate-import-')), 'cds.yml');
  fs.writeFileSync(
    file,
    `version: v1.0\nname: from-cds\ntype: bitbucketserver\ndescription: "imported from CDS"\nurl: "${simulator}"\n` +
      'auth:\n  user: jcitizen\n  token: BBDC-demo-token-0000000000000000000000000000\n' +
      'options:\n  disableStatus: false\n  disableStatusDetails: false\n  disablePolling: true\n  disableWebHooks: false\n',
  );
  await page.getByLabel('Or paste it').fill('');
  await page.getByLabel('Integrations file').setInputFiles(file);
  await page.getByLabel('Entries that name no space go to').selectOption({ label: 'root' });
  await page.getByRole('button', { name: 'Preview' }).click();
  const preview = page.getByRole('region', { name: 'Preview' });
  await expect(preview.locator('.import-group.created li')).toHaveText(['from-cds']);
  await expect(preview.locator('.import-group.unchanged')).toContainText('None.');
  await preview.getByRole('button', { name: 'Apply import' }).click();
  await expect(page.getByText('Imported. Created: from-cds. Updated: none. Unchanged: none.')).toBeVisible();
  await page.getByRole('link', { name: 'from-cds' }).click();
  await expect(page.getByText('Disabled: Bitgate never reads branch heads.')).toBeVisible();
  expect(errors).toEqual([]);
});

test('the API reference is readable in the browser and links its schemas', async ({ page }) => {
  const errors = watchConsole(page);
  await page.goto('/api/reference');
  await expect(page.getByRole('heading', { name: 'API reference' })).toBeVisible();
  await page.locator('#spaces_create').getByRole('link', { name: 'CreateSpace' }).click();
  await expect(page).toHaveURL(/#schema-CreateSpace$/);
  await expect(page.locator('#schema-CreateSpace').getByRole('cell', { name: 'parent_id' })).toBeVisible();
  const document = await (await page.request.get('/api/v1/openapi.json')).json();
  expect(document.openapi).toBe('3.1.0');
  expect(errors).toEqual([]);
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('logging in and out works with plain form posts', async ({ page }) => {
    await page.goto('/');
    await expect(page).toHaveURL(/\/login/);
    await page.getByLabel('Email').fill(admin.email);
    await page.getByLabel('Password', { exact: true }).fill(admin.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect(page.getByRole('heading', { name: 'Integrations', exact: true })).toBeVisible();
    // The islands' buttons stay hidden: nothing would make them work.
    await expect(page.getByRole('button', { name: 'Copy' })).toHaveCount(0);
    await page.getByRole('button', { name: 'Log out' }).click();
    await expect(page.getByText('You have logged out.')).toBeVisible();
  });
});
