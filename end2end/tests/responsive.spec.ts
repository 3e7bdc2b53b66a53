import { test, expect, type Page } from '@playwright/test';
import { admin, watchConsole } from './helpers';

// Every page at a phone's width (390 px): none is wider than the window
// (a phone browser would zoom such a page out), wide tables scroll inside
// their own box, and the navigation folds into a menu that opens without
// JavaScript. Runs after first-run.spec.ts and platform-loop.spec.ts, whose
// integrations, stacks, deliveries and runs these pages show.

const phone = { width: 390, height: 844 };

async function logIn(page: Page) {
  await page.goto('/login');
  await page.getByLabel('Email').fill(admin.email);
  await page.getByLabel('Password', { exact: true }).fill(admin.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page).not.toHaveURL(/\/login/);
}

/** How wide the page at `path` is, against the window. */
async function widths(page: Page, path: string) {
  const answer = await page.goto(path);
  expect(answer?.status(), path).toBeLessThan(400);
  return page.evaluate(() => ({ page: document.documentElement.scrollWidth, window: window.innerWidth }));
}

/** The first link in the page's content at `path` whose address matches `pattern`. */
async function firstLink(page: Page, path: string, pattern: RegExp): Promise<string> {
  await page.goto(path);
  const hrefs = await page.locator('main a[href]').evaluateAll((links) => links.map((a) => a.getAttribute('href') ?? ''));
  const found = hrefs.find((href) => pattern.test(href));
  expect(found, `a link like ${pattern} on ${path}`).toBeTruthy();
  return found!;
}

test('no page is wider than a 390 px phone', async ({ browser }) => {
  const context = await browser.newContext({ viewport: phone });
  const page = await context.newPage();
  const errors = watchConsole(page);
  expect(await widths(page, '/login'), 'the login page').toEqual({ page: phone.width, window: phone.width });
  await logIn(page);
  // platform-loop.spec.ts's integration, which has deliveries.
  await page.goto('/');
  const integration = (await page.locator('main').getByRole('link', { name: 'loop', exact: true }).getAttribute('href'))!;
  const stack = await firstLink(page, '/stacks', /^\/stacks\/[0-9a-f-]{36}$/);
  const space = await firstLink(page, '/spaces', /^\/spaces\/[0-9a-f-]{36}$/);
  const delivery = await firstLink(page, `${integration}/deliveries`, /^\/deliveries\/[0-9a-f-]{36}$/);
  const pages = [
    '/', '/integrations/new', '/integrations/new?provider=bitbucket_cloud',
    '/integrations/new?provider=bitbucket_datacenter', integration, `${integration}/edit`,
    `${integration}/deliveries`, delivery, '/integrations/import', '/stacks', '/stacks/new', stack,
    '/spaces', space, '/tokens', '/users', '/audit', '/api/reference',
  ];
  const tooWide: string[] = [];
  for (const path of pages) {
    const measured = await widths(page, path);
    if (measured.page > measured.window) tooWide.push(`${path}: ${measured.page} px`);
  }
  expect(tooWide, 'pages wider than the phone').toEqual([]);
  expect(errors).toEqual([]);
  await context.close();
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
