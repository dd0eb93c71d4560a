// browser.mjs: Debian's chromium through playwright-core, as the browser
// tests use it (no browser download is possible here).
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { PROBE_UA } from './harness.mjs';

export const CHROMIUM = '/usr/bin/chromium';
export const noBrowser = !existsSync(CHROMIUM) && 'no /usr/bin/chromium';

export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--user-agent=${PROBE_UA}`],
  });
}
