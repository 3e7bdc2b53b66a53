import { test, expect, type APIRequestContext } from '@playwright/test';
import { admin, watchConsole } from './helpers';

// The platform loop, as a newcomer clicks it with no Bitbucket and no
// platform of their own: Bitgate creates its webhook in the simulator's
// repository itself (nothing pasted), an API token goes into the
// simulator's platform page; then a pull request
// opened and a commit pushed on the simulator's repository page become
// Bitbucket's deliveries, the demo platform reports the runs, and the build
// statuses and the comment appear in Bitbucket's pages and the run on the
// stack's page. Runs after first-run.spec.ts, which set up the admin.

const simulator = () => process.env.BITGATE_E2E_SIMULATOR_URL!;
const repository = () => `${simulator()}/projects/OPS/repos/my-repo`;

async function api(request: APIRequestContext, token: string, method: string, url: string, data?: unknown) {
  const answer = await request.fetch(url, { method, data, headers: { Authorization: `Bearer ${token}` } });
  expect(answer.ok(), `${method} ${url}: ${answer.status()} ${await answer.text()}`).toBeTruthy();
  return answer.status() === 204 ? null : answer.json();
}

test('a pull request and a push made in the simulator come back from the platform as a comment and statuses', async ({ page, request }) => {
  const errors = watchConsole(page);
  // An API token for the platform, made in the browser.
  await page.goto('/login?next=/tokens');
  await page.getByLabel('Email').fill(admin.email);
  await page.getByLabel('Password', { exact: true }).fill(admin.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByLabel('Name').fill('demo platform');
  await page.getByRole('button', { name: 'Create token' }).click();
  const token = (await page.locator('.reveal code').textContent())!;
  const bitgate = new URL(page.url()).origin;

  // An integration and a stack on OPS/my-repo's main.
  const integration = await api(request, token, 'POST', '/api/v1/integrations', {
    name: 'loop', provider: 'bitbucket_datacenter', scope: 'default',
    datacenter: { api_url: simulator(), username: 'jcitizen', access_token: 'BBDC-demo-token-0000000000000000000000000000' },
  });
  const spaces = await api(request, token, 'GET', '/api/v1/spaces');
  const stack = await api(request, token, 'POST', '/api/v1/stacks', {
    name: 'loop-web', space_id: spaces.items[0].id, integration_id: integration.id, repository: 'OPS/my-repo', branch: 'main',
  });
  const webhook = await api(request, token, 'GET', `/api/v1/integrations/${integration.id}/webhook`);

  // Bitbucket's side: Bitgate made the repository's webhook itself, with
  // its endpoint and its secret, as soon as the stack was created.
  await expect(async () => {
    await page.goto(`${simulator()}/plugins/servlet/webhooks/projects/OPS/repos/my-repo`);
    const hook = page.locator('.hook', { hasText: 'Bitgate (loop)' });
    await expect(hook).toContainText(webhook.url, { timeout: 1000 });
    await expect(hook).toContainText('Signed with its secret', { timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  // The integration's page says so.
  await page.goto(`/integrations/${integration.id}`);
  await expect(page.locator('#hooks')).toContainText('OPS/my-repo');
  await expect(page.locator('#hooks .hook-state').first()).toHaveText('Installed');

  // The demo platform follows Bitgate with the token (the URL is the one the simulator was started with).
  await page.goto(`${simulator()}/simulator/platform`);
  await expect(page.getByLabel('Bitgate URL')).toHaveValue(bitgate);
  await page.getByLabel('Bitgate API token').fill(token);
  await page.getByRole('button', { name: 'Follow Bitgate' }).click();
  // From the feed's end: what the pull request below makes comes after it.
  await expect(async () => {
    await page.reload();
    await expect(page.locator('.status')).toContainText('Following', { timeout: 1000 });
  }).toPass({ timeout: 30_000 });

  // A pull request from a new branch, its title asking for a failure.
  await page.goto(`${repository()}/browse`);
  await page.getByLabel('From branch', { exact: true }).fill('feature/demo');
  await expect(page.getByLabel('Into branch', { exact: true })).toHaveValue('main');
  await page.getByLabel('Title', { exact: true }).fill('This will fail');
  await page.getByRole('button', { name: 'Open pull request', exact: true }).click();
  // (Other tests' integrations have their hooks in this repository too.)
  await expect(page.locator('.delivery', { hasText: 'pr:opened to Bitgate (loop)' }))
    .toContainText(/Sent pr:opened to Bitgate \(loop\): 20\d/);
  await page.getByRole('link', { name: /This will fail/ }).click();
  const id = /pull-requests\/(\d+)\/overview/.exec(page.url())![1];

  // The comment in Bitbucket's pull request page, the run's failure in it.
  await expect(async () => {
    await page.reload();
    await expect(page.locator('.comment', { hasText: 'Bitgate: loop-web' })).toContainText('Failed', { timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  await expect(page.locator('.comment')).toContainText(`Demo run of pull request #${id}`);

  // The stack's page: the run, failed, and its status sent.
  await expect(async () => {
    await page.goto(`/stacks/${stack.id}`);
    await expect(page.getByText(`Demo run of pull request #${id}`).first()).toBeVisible({ timeout: 1000 });
    await expect(page.getByText('FAILED').first()).toBeVisible({ timeout: 1000 });
  }).toPass({ timeout: 30_000 });

  // A push to main that works: its commit's build, successful.
  await page.goto(`${repository()}/browse`);
  await page.getByLabel('Branch', { exact: true }).fill('main');
  await page.getByLabel('Commit message', { exact: true }).fill('Works');
  await page.getByRole('button', { name: 'Push', exact: true }).click();
  await expect(page.locator('.delivery', { hasText: 'repo:refs_changed to Bitgate (loop)' }).first())
    .toContainText(/Sent repo:refs_changed to Bitgate \(loop\): 20\d/);
  await expect(page.locator('tr[data-branch="main"]')).toContainText('Works');
  await page.locator('tr[data-branch="main"] td.head a').click();
  await expect(async () => {
    await page.reload();
    await expect(page.locator('td.state').first()).toHaveText('SUCCESSFUL', { timeout: 1000 });
  }).toPass({ timeout: 30_000 });
  expect(errors).toEqual([]);
});
