// Time from navigation start until every island of a page is hydrated, in
// headless Chromium on loopback; the median of ten fresh page loads.
import { chromium } from '@playwright/test';

const url = process.env.BENCH_URL;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const times = [];
for (let i = 0; i < 10; i++) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(url);
  await page.waitForFunction(() => {
    const islands = [...document.querySelectorAll('[data-hydrated]')];
    return islands.length > 0 && islands.every((el) => el.getAttribute('data-hydrated') === 'true');
  });
  times.push(await page.evaluate(() => performance.now()));
  await context.close();
}
await browser.close();
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
console.log(`islands hydrated after page load: median ${median.toFixed(0)} ms of 10 loads (budget 1000 ms; min ${times[0].toFixed(0)}, max ${times[times.length - 1].toFixed(0)})`);
