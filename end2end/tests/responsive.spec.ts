import { test, expect, type Page } from '@playwright/test';
import { admin, checkAtEveryWidth, logIn as submitLogin, setupUrl, submitForm, waitForIslands, watchConsole } from './helpers';

// Every page, at a phone's width (390 px) and a laptop's (1280 px): none is
// wider than the window (a phone browser would zoom such a page out; wide
// tables scroll inside their own box), axe-core finds no serious or
// critical accessibility problem, and with BITGATE_SCREENSHOTS set each is
// saved as {width}-{name}.png (scripts/screenshots). The same for the pages
// that answer form posts, and for the error pages. On a phone the
// navigation folds into a menu that opens without JavaScript. Runs after
// first-run.spec.ts and platform-loop.spec.ts, whose integrations, stacks,
// deliveries and runs these pages show.

const phone = { width: 390, height: 844 };

async function logIn(page: Page) {
  await submitLogin(page);
  await expect(page).not.toHaveURL(/\/login/);
}

/** The href of the link named `name` in the page's content. */
async function linkNamed(page: Page, name: string): Promise<string> {
  const link = page.locator('main').getByRole('link', { name, exact: true });
  expect(await link.count(), `a link named ${name} on ${page.url()} (made by the specs before this one)`).toBe(1);
  return (await link.getAttribute('href'))!;
}

/** The first link in the page's content at `path` whose address matches `pattern`. */
async function firstLink(page: Page, path: string, pattern: RegExp): Promise<string> {
  await page.goto(path);
  const hrefs = await page.locator('main a[href]').evaluateAll((links) => links.map((a) => a.getAttribute('href') ?? ''));
  const found = hrefs.find((href) => pattern.test(href));
  expect(found, `a link like ${pattern} on ${path}`).toBeTruthy();
  return found!;
}

/**
 * Every page of the console a logged-in admin can open, each with the name
 * its screenshots get, found from the data of the specs before this one.
 */
async function consolePages(page: Page): Promise<{ name: string; path: string }[]> {
  await page.goto('/');
  const loop = await linkNamed(page, 'loop'); // platform-loop.spec.ts's: deliveries, a stack with runs
  const cloud = await linkNamed(page, 'cloud-main');
  const applicationLink = await linkNamed(page, 'dc-legacy');
  await page.goto('/stacks');
  const stack = await linkNamed(page, 'loop-web');
  const detached = await linkNamed(page, 'web');
  const space = await firstLink(page, '/spaces', /^\/spaces\/[0-9a-f-]{36}$/);
  const delivery = await firstLink(page, `${loop}/deliveries`, /^\/deliveries\/[0-9a-f-]{36}$/);
  return [
    { name: 'integrations', path: '/' },
    { name: 'integration-new', path: '/integrations/new' },
    { name: 'integration-new-cloud', path: '/integrations/new?provider=bitbucket_cloud' },
    { name: 'integration-new-datacenter', path: '/integrations/new?provider=bitbucket_datacenter' },
    { name: 'integration-details', path: loop },
    { name: 'integration-details-cloud', path: cloud },
    { name: 'integration-details-application-link', path: applicationLink },
    { name: 'integration-edit', path: `${loop}/edit` },
    { name: 'integration-delete', path: `${loop}/delete` },
    { name: 'deliveries', path: `${loop}/deliveries` },
    { name: 'delivery', path: delivery },
    { name: 'integration-import', path: '/integrations/import' },
    { name: 'stacks', path: '/stacks' },
    { name: 'stack-new', path: '/stacks/new' },
    { name: 'stack', path: stack },
    { name: 'stack-detached', path: detached },
    { name: 'spaces', path: '/spaces' },
    { name: 'space', path: space },
    { name: 'tokens', path: '/tokens' },
    { name: 'users', path: '/users' },
    { name: 'audit', path: '/audit' },
    { name: 'api-reference', path: '/api/reference' },
  ];
}

/** Console errors, but for the failed loads of the error pages a test opens on purpose. */
function unexpected(errors: string[]): string[] {
  return errors.filter((e) => !/Failed to load resource: the server responded with a status of (404|410)/.test(e));
}

test('every page, at 390 px and at 1280 px', async ({ page }) => {
  test.setTimeout(180_000);
  const errors = watchConsole(page);
  await logIn(page);
  for (const shown of await consolePages(page)) {
    const answer = await page.goto(shown.path);
    expect(answer?.status(), shown.path).toBe(200);
    await waitForIslands(page);
    await checkAtEveryWidth(page, shown.name);
  }
  expect(errors).toEqual([]);
});

test('the logged-out pages, at 390 px and at 1280 px', async ({ page }) => {
  const errors = watchConsole(page);
  expect((await page.goto('/login'))?.status()).toBe(200);
  await checkAtEveryWidth(page, 'login');
  await page.goto('/login?reason=logged_out');
  await expect(page.getByText('You have logged out.')).toBeVisible();
  await checkAtEveryWidth(page, 'login-logged-out');

  // A wrong password: the form again, with what went wrong.
  await page.getByLabel('Email').fill(admin.email);
  await page.getByLabel('Password', { exact: true }).fill('not the password');
  expect(await submitForm(page, page.getByRole('button', { name: 'Log in' }))).toBe(401);
  await expect(page.getByText('The email or password is incorrect.')).toBeVisible();
  await checkAtEveryWidth(page, 'login-refused');

  expect((await page.goto(setupUrl()))?.status()).toBe(410);
  await expect(page.getByText('This setup link has been used already.')).toBeVisible();
  await checkAtEveryWidth(page, 'setup-used');
  expect(unexpected(errors)).toEqual([]);
});

test('the answers to form posts, and the error pages, at 390 px and at 1280 px', async ({ page }) => {
  test.setTimeout(120_000);
  const errors = watchConsole(page);
  await logIn(page);
  await page.goto('/');
  const loop = await linkNamed(page, 'loop');

  // The Data Center wizard with invalid input: the form again, each field's problem beside it.
  await page.goto('/integrations/new?provider=bitbucket_datacenter');
  await waitForIslands(page);
  await page.getByLabel('Name', { exact: true }).fill('wizard-check');
  await page.getByLabel('API URL').fill(process.env.BITGATE_E2E_SIMULATOR_URL!);
  await page.getByLabel('User-facing URL').fill('ftp://bitbucket.example.com');
  await page.getByLabel('Username').fill('jcitizen');
  expect(await submitForm(page, page.getByRole('button', { name: 'Test connection and save' }))).toBe(422);
  await expect(page.locator('.field-error').first()).toBeVisible();
  await waitForIslands(page);
  await checkAtEveryWidth(page, 'integration-new-refused');

  // A new stack, step by step, then refused for its branch.
  await page.goto('/stacks/new');
  await page.getByLabel('Space', { exact: true }).selectOption({ label: 'root' });
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByLabel('Integration').selectOption({ label: 'loop (Bitbucket Data Center)' });
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByLabel('2. Find the repository').fill('my-repo');
  await page.getByRole('button', { name: 'Search' }).click();
  await expect(page.getByRole('radio')).toHaveCount(1);
  await checkAtEveryWidth(page, 'stack-new-repository');
  await page.getByRole('radio').check();
  await page.getByLabel('Stack name').fill('web-check');
  await page.getByLabel('Branch', { exact: true }).fill('main.');
  expect(await submitForm(page, page.getByRole('button', { name: 'Create stack' }))).toBe(422);
  await expect(page.locator('.field-error').first()).toBeVisible();
  await checkAtEveryWidth(page, 'stack-new-refused');

  // Deleting an integration, its name mistyped.
  await page.goto(`${loop}/delete`);
  await page.getByLabel('Type loop to confirm').fill('lopo');
  expect(await submitForm(page, page.getByRole('button', { name: 'Delete this integration' }))).toBe(422);
  await expect(page.locator('.field-error', { hasText: 'to delete it' })).toBeVisible();
  await checkAtEveryWidth(page, 'integration-delete-refused');

  // An import with a mistake, every problem listed.
  await page.goto('/integrations/import');
  await page.getByLabel('Or paste it').fill('version: 1\nintegrations:\n- {name: broken, provider: bitbucket_gitlab}\n');
  expect(await submitForm(page, page.getByRole('button', { name: 'Preview' }))).toBe(422);
  await expect(page.getByText('Nothing was imported: fix')).toBeVisible();
  await checkAtEveryWidth(page, 'integration-import-refused');

  // A new API token, shown once.
  await page.goto('/tokens');
  await page.getByLabel('Name').fill('screenshots');
  expect(await submitForm(page, page.getByRole('button', { name: 'Create token' }))).toBe(201);
  await expect(page.locator('.reveal code')).toBeVisible();
  await waitForIslands(page);
  await checkAtEveryWidth(page, 'token-created');
  await page.goto('/tokens');
  await page.getByRole('button', { name: 'Revoke screenshots' }).click();
  await expect(page.getByText('The token “screenshots” is revoked: it no longer works.')).toBeVisible();

  // The error pages: inside the console, and on its own (Bitbucket's
  // answer that matches no connection, with a way to start again).
  expect((await page.goto('/integrations/00000000-0000-0000-0000-000000000000'))?.status()).toBe(404);
  await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
  await checkAtEveryWidth(page, 'not-found');
  expect((await page.goto('/oauth/bitbucket/callback'))?.status()).toBe(400);
  await checkAtEveryWidth(page, 'oauth-refused');
  expect(unexpected(errors)).toEqual([]);
});

test('on a phone the navigation is a menu that opens without JavaScript', async ({ browser }) => {
  const context = await browser.newContext({ viewport: phone });
  const page = await context.newPage();
  await logIn(page);
  const noScript = await browser.newContext({ viewport: phone, javaScriptEnabled: false, storageState: await context.storageState() });
  const bare = await noScript.newPage();
  await bare.goto('/');
  const bar = bare.locator('header.topbar > nav.topnav');
  await expect(bar, 'the bar holds no navigation on a phone').toBeHidden();
  await expect(bare.getByRole('link', { name: 'Stacks' })).toBeHidden();
  await bare.getByText('Menu', { exact: true }).click();
  await bare.getByRole('link', { name: 'Stacks' }).click();
  await expect(bare).toHaveURL(/\/stacks$/);
  await expect(bare.getByRole('heading', { level: 1 })).toHaveText('Stacks');
  await expect(bare.getByRole('button', { name: 'Log out' })).toBeHidden();
  await bare.getByText('Menu', { exact: true }).click();
  await expect(bare.getByRole('button', { name: 'Log out' })).toBeVisible();
  // A wide window shows the bar and no menu.
  await bare.setViewportSize({ width: 1280, height: 800 });
  await expect(bar).toBeVisible();
  await expect(bare.getByText('Menu', { exact: true })).toBeHidden();
  await noScript.close();
  await context.close();
});
