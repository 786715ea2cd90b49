// What the shopper-page tests share: Chromium, screenshots, waiting for the page with a
// useful failure, and signing in through the dev sign-in as a shopper does.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

// Debian's Chromium (or CHROMIUM), headless, with nothing of its own going online.
export async function launchChromium(env, shots) {
  mkdirSync(shots, { recursive: true });
  const executablePath = env.CHROMIUM || '/usr/bin/chromium';
  try {
    return await chromium.launch({
      executablePath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  } catch (e) {
    throw new Error(`cannot launch Chromium at ${executablePath} (set CHROMIUM): ${e.message}`);
  }
}

export const storedToken = (page) => page.evaluate(() => localStorage.getItem('flashsale.token'));
export const subject = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url')).sub;

// Screenshots into `shots`, and waits that fail with `visible(page)` (what the shopper
// sees) and a screenshot.
export function pageChecks(shots, visible) {
  const shot = (page, file) => page.screenshot({ path: join(shots, file), fullPage: true });

  async function expectSoon(page, selector, what, { timeout = 10_000, state = 'attached' } = {}) {
    try {
      await page.locator(selector).first().waitFor({ state, timeout });
    } catch {
      const file = `failed-${what.replace(/\W+/g, '-')}.png`;
      await shot(page, file).catch(() => {});
      assert.fail(`${what}: no ${selector} (${state}) within ${timeout} ms; the page shows ${await visible(page)}; see ${join(shots, file)}`);
    }
  }

  // Signs in from the sale page shown, as a shopper does: the sign-in link, the dev
  // sign-in's form, and back to the same page with a code the page trades for a token.
  async function signIn(page, user) {
    const salePage = page.url();
    await expectSoon(page, '#signin', 'a sign-in link', { state: 'visible' });
    await page.locator('#signin').click();
    await page.waitForURL(/\/dev\/oauth2\/authorize\?/, { timeout: 10_000 });
    const asked = new URL(page.url()).searchParams;
    assert.equal(asked.get('code_challenge_method'), 'S256', 'PKCE with S256');
    assert.match(asked.get('state'), /^[\w-]{43}$/, 'state is a fresh nonce, not a path');
    await page.locator('#user').fill(user);
    await page.locator('button[type=submit]').click();
    await page.waitForURL(salePage, { timeout: 10_000 });
    assert.equal(subject(await storedToken(page)), user, `${user} is signed in`);
    assert.equal(new URL(page.url()).search, '', 'no code is left in the address bar');
  }

  return { shot, expectSoon, signIn };
}
