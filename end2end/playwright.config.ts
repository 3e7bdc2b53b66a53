import { defineConfig } from '@playwright/test';
import fs from 'node:fs';
import path from 'node:path';

// A fresh data directory per run: Bitgate starts its embedded PostgreSQL
// cluster there (DATABASE_URL unset), prints a setup link, and writes it to
// `setup-url`, which the tests read. Under /tmp so that the cluster's
// unprivileged user can reach it when the tests run as root.
const dataDir = process.env.BITGATE_E2E_DATA_DIR ?? fs.mkdtempSync('/tmp/bitgate-e2e-');
process.env.BITGATE_E2E_DATA_DIR = dataDir;
const port = Number(process.env.BITGATE_E2E_PORT ?? 3123);
const baseURL = `http://127.0.0.1:${port}`;
// The Bitbucket simulator the wizard connects to (tests read it from here).
const simulatorPort = Number(process.env.BITGATE_E2E_SIMULATOR_PORT ?? 3124);
process.env.BITGATE_E2E_SIMULATOR_URL = `http://127.0.0.1:${simulatorPort}`;

export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: {
    baseURL,
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  webServer: [
    {
      command: `../target/release/bitbucket-simulator --listen 127.0.0.1:${simulatorPort} --bitgate-url ${baseURL}`,
      url: `http://127.0.0.1:${simulatorPort}/rest/api/1.0/application-properties`,
      timeout: 30_000,
      reuseExistingServer: false,
    },
    {
    command: '../target/release/bitgate serve',
    url: `${baseURL}/readyz`,
    timeout: 60_000,
    reuseExistingServer: false,
    stdout: 'pipe',
    stderr: 'pipe',
    env: {
      DATABASE_URL: '',
      BITGATE_DATA_DIR: dataDir,
      BITGATE_LISTEN: `127.0.0.1:${port}`,
      BITGATE_PUBLIC_URL: baseURL,
      // The site cargo-leptos built, wherever the command runs from.
      LEPTOS_SITE_ROOT: path.resolve(process.cwd(), '..', 'target', 'site'),
      RUST_LOG: 'warn',
      // The simulator is on loopback, which Bitgate refuses to call by default.
      BITGATE_OUTBOUND_DENY: '',
      // It plays Bitbucket Cloud too.
      BITGATE_BITBUCKET_CLOUD_URL: `http://127.0.0.1:${simulatorPort}`,
      BITGATE_BITBUCKET_CLOUD_API_URL: `http://127.0.0.1:${simulatorPort}`,
    },
    },
  ],
});
