import { test, expect, type APIRequestContext } from '@playwright/test';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { admin, watchConsole } from './helpers';

// The platform loop, as a newcomer watches it with no platform of their
// own: a pull request opened in Bitbucket (the simulator) becomes an event,
// the simulator's `platform` reports a failing run, and the build status
// and the comment appear in Bitbucket's pages and on the stack's page.
// Runs after first-run.spec.ts, which set up the admin.

const simulator = () => process.env.BITGATE_E2E_SIMULATOR_URL!;

async function api(request: APIRequestContext, token: string, method: string, url: string, data?: unknown) {
  const answer = await request.fetch(url, { method, data, headers: { Authorization: `Bearer ${token}` } });
  expect(answer.ok(), `${method} ${url}: ${answer.status()} ${await answer.text()}`).toBeTruthy();
  return answer.status() === 204 ? null : answer.json();
}

test('a failing pull request run reaches Bitbucket as a status and a comment, and shows on the stack page', async ({ page, request }) => {
  const errors = watchConsole(page);
  // An API token for the platform, made in the browser.
  await page.goto('/login?next=/tokens');
  await page.getByLabel('Email').fill(admin.email);
  await page.getByLabel('Password', { exact: true }).fill(admin.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByLabel('Name').fill('demo platform');
  await page.getByRole('button', { name: 'Create token' }).click();
  const token = (await page.locator('.reveal code').textContent())!;

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

  // The platform follows the feed for this stack, from its end now: what
  // the delivery below makes comes after this cursor.
  const head = await api(request, token, 'GET', `/api/v1/events?stack_id=${stack.id}`);
  const platform = spawn('../target/release/bitbucket-simulator',
    ['platform', '--bitgate-url', new URL(page.url()).origin, '--token', token, '--stack', stack.id, '--step', '0',
     '--after', head.next_cursor],
    { stdio: 'ignore' });
  try {

    // Bitbucket opens the simulator's pull request 1 (its title asks for a failure).
    const opened = JSON.parse(execFileSync('../target/release/bitbucket-simulator', ['payload', 'pr:opened']).toString());
    opened.pullRequest.id = 1;
    opened.pullRequest.title = 'This will fail';
    opened.pullRequest.fromRef.displayId = 'feature';
    opened.pullRequest.fromRef.id = 'refs/heads/feature';
    opened.pullRequest.fromRef.latestCommit = 'c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00';
    const body = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bitgate-loop-')), 'opened.json');
    fs.writeFileSync(body, JSON.stringify(opened));
    execFileSync('../target/release/bitbucket-simulator',
      ['send', '--url', webhook.url, '--secret', webhook.secret, '--event', 'pr:opened', '--body-file', body]);

    // The comment in Bitbucket's pull request page, the run's failure in it.
    await expect(async () => {
      await page.goto(`${simulator()}/projects/OPS/repos/my-repo/pull-requests/1/overview`);
      await expect(page.locator('.comment', { hasText: 'Bitgate: loop-web' })).toContainText('Failed', { timeout: 1000 });
    }).toPass({ timeout: 30_000 });
    await expect(page.locator('.comment')).toContainText('Demo run of pull request #1');

    // The stack's page: the run, failed, and its status sent.
    await expect(async () => {
      await page.goto(`/stacks/${stack.id}`);
      await expect(page.getByText('Demo run of pull request #1').first()).toBeVisible({ timeout: 1000 });
      await expect(page.getByText('FAILED').first()).toBeVisible({ timeout: 1000 });
    }).toPass({ timeout: 30_000 });
  } finally {
    platform.kill();
  }
  expect(errors).toEqual([]);
});
